"""Step 2 — the model: VGG16 ("configuration D") with BatchNormalization, in plain Keras.

The code below is the code that notebook 02 shows and explains, kept here so that
the other notebooks, the scripts and the tests build the same model (each
definition carries the ``# @save`` mark in 02; a test keeps the two copies equal).

With its defaults :func:`build_vgg16` is the article's model: the same layers and
layer names, the same output shapes and 33,655,114 parameters. Faster variants for
CPUs are not here: they live in :mod:`vggcifar.speed` and never change the model.
"""

from __future__ import annotations

import keras
from keras import layers

from .settings import check_model_options

#: Parameter counts of the article's model (CIFAR-10, 32x32x3 input).
ARTICLE_PARAMS = {"total": 33_655_114, "trainable": 33_646_666, "non_trainable": 8_448}


VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg_block(block, num_convs, filters, first_bn, *, batch_norm=True, l2=0.0, bn_momentum=0.99):
    """The layers of one VGG block: num_convs x (3x3 convolution, BatchNormalization, ReLU), 2x2 max pooling.

    block numbers the layer names (block1_conv1, ...); first_bn is the number of the
    block's first BatchNormalization layer, because the article counts bn1 ... bn13
    across the whole network.
    """
    regularizer = keras.regularizers.L2(l2) if l2 else None
    block_layers = []
    for i in range(1, num_convs + 1):
        block_layers.append(
            layers.Conv2D(
                filters,
                kernel_size=(3, 3),
                strides=(1, 1),
                padding="same",
                kernel_regularizer=regularizer,
                name=f"block{block}_conv{i}",
            )
        )
        if batch_norm:
            block_layers.append(layers.BatchNormalization(momentum=bn_momentum, name=f"bn{first_bn + i - 1}"))
        block_layers.append(layers.Activation("relu", name=f"block{block}_relu{i}"))
    block_layers.append(
        layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2), padding="same", name=f"block{block}_pool")
    )
    return block_layers


def build_vgg16(
    input_shape=(32, 32, 3),
    num_classes=10,
    *,
    batch_norm=True,
    dropout=0.0,
    l2=0.0,
    fc_units=4096,
    bn_momentum=0.99,
    blocks=VGG16_BLOCKS,
    name="vgg16_bn",
):
    """VGG16 with BatchNormalization for small pictures; the defaults build the article's model.

    dropout (after fc1 and fc2), l2 (a penalty on every kernel) and bn_momentum are
    the improvements of notebook 06; batch_norm=False and fc_units are for the
    exercises. blocks, one (convolutions, filters) pair per block, gives a smaller
    network of the same kind, e.g. ((1, 8),) * 5 with fc_units=16 (a few KB saved, for
    tests). The output layer computes in float32 even under mixed precision.
    """
    check_model_options(input_shape, num_classes, dropout, l2, fc_units, bn_momentum, blocks)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape), name="pictures"))
    first_bn = 1
    for block, (num_convs, filters) in enumerate(blocks, start=1):
        for layer in vgg_block(
            block, num_convs, filters, first_bn, batch_norm=batch_norm, l2=l2, bn_momentum=bn_momentum
        ):
            model.add(layer)
        first_bn += num_convs
    model.add(layers.Flatten(name="flatten"))
    for i in (1, 2):
        model.add(layers.Dense(fc_units, activation="relu", kernel_regularizer=regularizer, name=f"fc{i}"))
        if dropout:
            model.add(layers.Dropout(dropout, name=f"dropout{i}"))
    model.add(
        layers.Dense(
            num_classes,
            activation="softmax",
            kernel_regularizer=regularizer,
            dtype="float32",
            name="predictions",
        )
    )
    return model


def count_params(model):
    """Total, trainable and non-trainable parameter counts, as ``model.summary()`` shows them."""
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}
