"""Step 2 — the model: VGG16 ("configuration D") with BatchNormalization.

The network is described by a short list, ``VGG16_BLOCKS``: five blocks of 3x3
convolutions. :func:`vgg_block` turns one entry into layers and
:func:`build_vgg16` stacks the blocks and the three dense layers on top.

With its defaults :func:`build_vgg16` reproduces the article's model exactly:
the same layer names, output shapes and 33,655,114 parameters.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

#: (number of 3x3 convolutions, number of filters) for each of the five blocks.
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

@keras.saving.register_keras_serializable(package="vggcifar")
class FusedBatchNormalization(layers.BatchNormalization):
    """BatchNormalization computed by TensorFlow's fused kernel: same weights, same maths.

    Keras 3's BatchNormalization is written in generic operations (mean, variance,
    subtract, multiply...), each one a pass over the activations. TensorFlow has one
    kernel that does it all in a pass (oneDNN on CPUs, cuDNN on GPUs); on this
    project's 2-core CPU it makes a training step of the article's model about
    1.4 times faster. Other backends fall back to Keras' own code. The one difference:
    TensorFlow's kernel updates the moving variance with the unbiased batch variance
    (n / (n - 1) times Keras' value; 1.016 for a 64-picture batch in block 5).
    Loading a saved model that uses it needs ``import vggcifar``.
    """

    def call(self, inputs, training=None, mask=None):
        if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4 \
                or self.axis not in (-1, 3, [3]):  # fused kernels want channels last
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        inputs = tf.cast(inputs, self.compute_dtype)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon, is_training=True,
                exponential_avg_factor=1.0 - self.momentum)
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, mean=self.moving_mean,
            variance=self.moving_variance, epsilon=self.epsilon, is_training=False)
        return outputs


@keras.saving.register_keras_serializable(package="vggcifar")
class SmallPictureConv2D(layers.Conv2D):
    """Conv2D computed as matrix products on small pictures: same weights, same maths.

    Blocks 4 and 5 see 4x4 and 2x2 pictures with 256-512 channels. There TensorFlow's
    CPU convolution kernels are slow (in bfloat16, block 5's 2x2x512 convolution takes
    twice as long as block 1's 32x32x64 one, for a quarter of the arithmetic), while
    matrix products of the same size run at full speed. So on pictures of at most
    ``MAX_PIXELS`` pixels this layer computes

    * the output as the sum over the kernel's taps (9 for a 3x3 kernel) of (the input
      shifted by the tap) x (the tap's channels-in x channels-out matrix), skipping the
      zero padding;
    * the kernel's gradient as one product of the input's patches
      (``tf.image.extract_patches``) with the output's gradient.

    The input's gradient keeps TensorFlow's kernel. On this project's CPU (bfloat16) the
    forward pass of block 5's convolutions gets 6 times faster, block 4's 1.5 to 2 times.
    Larger pictures, other strides, other backends, and machines with a GPU or TPU
    (where this was not measured, and cuDNN's kernels are tuned for small pictures too)
    keep Keras' code. Loading a saved model that uses it needs ``import vggcifar``.
    """

    MAX_PIXELS = 16

    def convolution_op(self, inputs, kernel):
        height, width = inputs.shape[1], inputs.shape[2]
        if (keras.backend.backend() != "tensorflow" or self.data_format != "channels_last"
                or tuple(self.strides) != (1, 1) or tuple(self.dilation_rate) != (1, 1)
                or self.groups != 1 or height is None or width is None
                or height * width > self.MAX_PIXELS or not _cpu_only()):
            return super().convolution_op(inputs, kernel)
        return _conv2d_as_matmuls(inputs, kernel, self.padding.upper())


def _cpu_only():
    """True when TensorFlow sees neither a GPU nor a TPU."""
    import tensorflow as tf

    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _shifted_matmuls(x, kernel, padding):
    """A stride-1 convolution as one matrix product per kernel tap, summed.

    Tap (i, j) multiplies every input pixel's channels by ``kernel[i, j]`` and adds the
    result to the output pixel ``i - pad`` rows above and ``j - pad`` columns left of
    it. Each product covers only the output pixels the tap can reach from inside the
    picture (with padding, the rest would be multiplications by zero); ``tf.pad``
    fills the others with zeros before the sum. In 16-bit precisions the products are
    summed in float32, as a convolution kernel sums.
    """
    import tensorflow as tf

    kernel_h, kernel_w = kernel.shape[0], kernel.shape[1]
    height, width = x.shape[1], x.shape[2]
    if padding == "SAME":  # TensorFlow puts the odd padding pixel at the bottom and right
        (pad_h, pad_w), (out_h, out_w) = ((kernel_h - 1) // 2, (kernel_w - 1) // 2), (height, width)
    else:
        (pad_h, pad_w), (out_h, out_w) = (0, 0), (height - kernel_h + 1, width - kernel_w + 1)
    total_dtype = tf.float32 if x.dtype in (tf.bfloat16, tf.float16) else x.dtype
    parts = []
    for i in range(kernel_h):
        top, bottom = max(0, pad_h - i), min(out_h, height + pad_h - i)  # output rows
        for j in range(kernel_w):
            left, right = max(0, pad_w - j), min(out_w, width + pad_w - j)  # output columns
            if top >= bottom or left >= right:
                continue  # this tap only ever sees padding
            window = x[:, top + i - pad_h:bottom + i - pad_h, left + j - pad_w:right + j - pad_w, :]
            part = tf.cast(tf.tensordot(window, kernel[i, j], axes=1), total_dtype)
            parts.append(tf.pad(part, [[0, 0], [top, out_h - bottom], [left, out_w - right], [0, 0]]))
    return tf.cast(tf.add_n(parts), x.dtype)


def _conv2d_as_matmuls(inputs, kernel, padding):
    import tensorflow as tf

    @tf.custom_gradient
    def convolve(x, k):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k, out_backprop=dy,
                                                strides=[1, 1, 1, 1], padding=padding)
            kh, kw, channels_in, channels_out = k.shape
            patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, 1, 1, 1], [1, 1, 1, 1], padding)
            dk = tf.matmul(tf.reshape(patches, (-1, kh * kw * channels_in)),
                           tf.reshape(dy, (-1, channels_out)), transpose_a=True)
            return dx, tf.reshape(dk, k.shape)

        return _shifted_matmuls(x, k, padding), gradient

    # tensors, not variables: the gradient above is the kernel's, whoever holds it
    return convolve(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


#: Parameter counts of the article's model (CIFAR-10, 32x32x3 input).
ARTICLE_PARAMS = {"total": 33_655_114, "trainable": 33_646_666, "non_trainable": 8_448}


def _regularizer(l2):
    return keras.regularizers.L2(l2) if l2 else None


def vgg_block(block, num_convs, filters, *, first_bn_index, batch_norm=True, l2=0.0,
              bn_momentum=0.99, fused_batchnorm=False, small_picture_conv=False, dtype=None):
    """Layers of one VGG block: ``num_convs`` x (3x3 conv → BatchNorm → ReLU), then 2x2 max pooling.

    ``block`` is the block's number (1-5), used in the layer names; ``first_bn_index``
    is the number of this block's first BatchNormalization layer, because the
    article numbers them bn1 … bn13 across the whole network.
    """
    block_layers = []
    for i in range(1, num_convs + 1):
        conv = SmallPictureConv2D if small_picture_conv else layers.Conv2D
        block_layers.append(conv(
            filters, kernel_size=3, strides=1, padding="same",
            kernel_regularizer=_regularizer(l2), dtype=dtype, name=f"block{block}_conv{i}"))
        if batch_norm:
            norm = FusedBatchNormalization if fused_batchnorm else layers.BatchNormalization
            block_layers.append(norm(momentum=bn_momentum, dtype=dtype,
                                     name=f"bn{first_bn_index + i - 1}"))
        block_layers.append(layers.Activation("relu", dtype=dtype, name=f"block{block}_relu{i}"))
    block_layers.append(layers.MaxPooling2D(pool_size=2, strides=2, padding="same",
                                            dtype=dtype, name=f"block{block}_pool"))
    return block_layers


def build_vgg16(input_shape=(32, 32, 3), num_classes=10, *, batch_norm=True,
                dropout=0.0, l2=0.0, fc_units=4096, bn_momentum=0.99,
                fused_batchnorm=False, small_picture_conv=False, dtype=None, name="vgg16_bn"):
    """Build VGG16 for small pictures, as in the article.

    Parameters
    ----------
    input_shape: height, width, channels of the pictures (article: 32, 32, 3).
    num_classes: number of output classes (article: 10).
    batch_norm: put BatchNormalization after every convolution (article: True).
    dropout: dropout rate after fc1 and fc2; 0 adds no Dropout layers (article: 0).
    l2: L2 penalty factor on every convolution and dense kernel (article: 0).
    fc_units: width of fc1 and fc2 (article and VGG16: 4096).
    bn_momentum: how slowly BatchNormalization's moving mean and variance follow the
        batches (Keras' and the article's default: 0.99). They are what the model uses
        when it predicts; with 0.99 they need several hundred training steps to settle,
        so a very short run predicts poorly until then. 0.9 settles ten times faster.
    fused_batchnorm: use :class:`FusedBatchNormalization` (the same layer, computed by
        TensorFlow's fused kernel: faster training) instead of Keras' own.
    small_picture_conv: use :class:`SmallPictureConv2D` (the same layer, computed as
        matrix products on the 4x4 and 2x2 pictures of blocks 4 and 5: faster on CPUs).
    dtype: a Keras dtype policy such as ``"mixed_bfloat16"`` for every layer but the
        output, which always computes in float32; None uses Keras' global policy.
    """
    _check_options(input_shape, num_classes, dropout, l2, fc_units, bn_momentum)
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape), name="pictures"))
    bn_index = 1
    for block, (num_convs, filters) in enumerate(VGG16_BLOCKS, start=1):
        for layer in vgg_block(block, num_convs, filters, first_bn_index=bn_index,
                               batch_norm=batch_norm, l2=l2, bn_momentum=bn_momentum,
                               fused_batchnorm=fused_batchnorm,
                               small_picture_conv=small_picture_conv, dtype=dtype):
            model.add(layer)
        bn_index += num_convs
    model.add(layers.Flatten(dtype=dtype, name="flatten"))
    for i in (1, 2):
        model.add(layers.Dense(fc_units, activation="relu", kernel_regularizer=_regularizer(l2),
                               dtype=dtype, name=f"fc{i}"))
        if dropout:
            model.add(layers.Dropout(dropout, dtype=dtype, name=f"dropout{i}"))
    # The output layer computes in float32 even under a mixed-precision policy.
    model.add(layers.Dense(num_classes, activation="softmax",
                           kernel_regularizer=_regularizer(l2), dtype="float32",
                           name="predictions"))
    return model


def count_params(model):
    """Total, trainable and non-trainable parameter counts, as ``model.summary()`` shows them."""
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}


def _check_options(input_shape, num_classes, dropout, l2, fc_units, bn_momentum):
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"input_shape must be (height, width, channels) with positive "
                         f"whole numbers, got {input_shape!r}")
    if shape[0] < 32 or shape[1] < 32:
        raise ValueError(f"input_shape must be at least 32x32 (five 2x2 poolings halve the "
                         f"picture five times), got {shape[0]}x{shape[1]}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number >= 2, got {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    if not isinstance(fc_units, int) or fc_units < 1:
        raise ValueError(f"fc_units must be a whole number >= 1, got {fc_units!r}")
    if not 0.0 <= bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum!r}")


def fold_batchnorm(model, dtype=None):
    """A copy of ``model`` for prediction only, with each BatchNormalization folded into its convolution.

    When predicting, BatchNormalization is a fixed per-channel scale and shift:
    ``gamma * (x - mean) / sqrt(variance + epsilon) + beta``. Applied to a convolution's
    output it can be multiplied into the convolution's kernel and bias once, and the
    layer disappears: the same predictions (up to rounding) with 13 fewer passes over
    the activations. The copy's convolutions are :class:`SmallPictureConv2D` (faster in
    blocks 4 and 5). ``dtype`` sets its precision policy (default: the model's).
    """
    by_name = {layer.name: layer for layer in model.layers}
    if not any(isinstance(layer, layers.BatchNormalization) for layer in model.layers):
        raise ValueError("fold_batchnorm: the model has no BatchNormalization layers")
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    folded = build_vgg16(tuple(model.input_shape[1:]), dense[-1].units, batch_norm=False,
                         fc_units=dense[0].units, small_picture_conv=True,
                         dtype=dtype or model.layers[0].dtype_policy.name,
                         name=f"{model.name}_folded")
    for layer in folded.layers:
        source = by_name[layer.name]
        if isinstance(layer, layers.Conv2D):
            bn = by_name[f"bn{_bn_index(model, layer.name)}"]
            gamma, beta, mean, variance = (np.asarray(w) for w in bn.get_weights())
            scale = gamma / np.sqrt(variance + bn.epsilon)
            kernel, bias = source.get_weights()
            layer.set_weights([kernel * scale, (bias - mean) * scale + beta])
        elif layer.weights:
            layer.set_weights(source.get_weights())
    return folded


def _bn_index(model, conv_name):
    convs = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
    return convs.index(conv_name) + 1
