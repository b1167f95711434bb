"""The opt-in CPU speed-ups: the same maths as Keras, the same layers, the same saved files."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import NARROW
from vggcifar import speed
from vggcifar.data import make_synthetic
from vggcifar.model import ARTICLE_PARAMS, build_vgg16, count_params
from vggcifar.speed import (
    SpeedUps,
    apply_speedups,
    fold_batchnorm,
    speed_up_optimizer,
    speedups_applied,
    speedups_enabled,
)
from vggcifar.training import compile_like_article, pixels_to_float


def set_batchnorm_statistics(model):
    """Move every BatchNormalization away from its start values, the same way in every model."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    np.linspace(0.5, 1.5, n),
                    np.linspace(-0.2, 0.2, n),
                    np.linspace(-0.1, 0.1, n),
                    np.linspace(0.5, 2.0, n),
                ]
            )


def twin_models(**options):
    keras.utils.set_random_seed(3)
    plain = build_vgg16(fc_units=16, **options)
    fast = keras.models.clone_model(plain)
    fast.set_weights(plain.get_weights())
    return plain, fast


def test_swapped_model_keeps_its_keras_layers_and_gives_the_same_predictions():
    x = np.random.default_rng(0).random((16, 32, 32, 3), dtype="float32")
    plain, fast = twin_models()
    for model in (plain, fast):
        set_batchnorm_statistics(model)
    swapped = apply_speedups(fast)
    assert swapped == {"batchnorm": 13, "conv": 13, "optimizer": None}
    assert speedups_applied(fast) and not speedups_applied(plain)
    assert [type(layer) for layer in fast.layers] == [type(layer) for layer in plain.layers]
    assert count_params(fast)["non_trainable"] == ARTICLE_PARAMS["non_trainable"]
    assert fast.to_json() == plain.to_json()  # what a saved file would hold
    np.testing.assert_allclose(fast.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-5)
    # training mode: batch statistics in both
    np.testing.assert_allclose(fast(x, training=True), plain(x, training=True), atol=1e-4)
    assert apply_speedups(fast) == {"batchnorm": 0, "conv": 0, "optimizer": None}  # once only


def test_folded_copy_predicts_the_same_without_batchnorm():
    keras.utils.set_random_seed(4)
    model = build_vgg16(fc_units=32)
    set_batchnorm_statistics(model)
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert type(folded.get_layer("block5_conv3")) is keras.layers.Conv2D and speedups_applied(folded)
    assert [layer.name for layer in folded.layers if "conv" in layer.name] == [
        layer.name for layer in model.layers if "conv" in layer.name
    ]
    x = np.random.default_rng(1).random((8, 32, 32, 3), dtype="float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="no BatchNormalization"):
        fold_batchnorm(folded)


def conv_pair(size, kernel, padding, dtype=None, filters=7, channels=6):
    plain = keras.Sequential(
        [keras.Input((*size, channels)), keras.layers.Conv2D(filters, kernel, padding=padding, dtype=dtype)]
    )
    fast = keras.Sequential(
        [keras.Input((*size, channels)), keras.layers.Conv2D(filters, kernel, padding=padding, dtype=dtype)]
    )
    fast.set_weights(plain.get_weights())
    apply_speedups(fast)
    return plain.layers[0], fast.layers[0]


@pytest.mark.parametrize(
    "size, kernel, padding",
    [
        ((2, 2), 3, "same"),
        ((4, 4), 3, "same"),
        ((4, 4), 3, "valid"),
        ((1, 1), 3, "same"),
        ((2, 4), (2, 3), "same"),
        ((3, 4), 2, "valid"),
        ((4, 4), 5, "same"),
        ((8, 8), 3, "same"),
    ],
)
def test_small_picture_convolution_gives_keras_outputs_and_gradients(size, kernel, padding):
    """Same outputs and gradients as Conv2D: on at most 16 pixels they are matrix products (odd
    and even kernels, TensorFlow's uneven "same" padding), on 8x8 Keras' own code."""
    x = tf.random.normal((5, *size, 6), seed=1)
    plain, fast = conv_pair(size, kernel, padding)
    results = []
    for layer in (plain, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for theirs, ours in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
    # the forward pass really is matrix products on small pictures, a convolution on others
    graph = tf.function(fast).get_concrete_function(tf.TensorSpec(x.shape)).graph
    op_types = {op.type for op in graph.get_operations()}
    assert ("Conv2D" in op_types) == (size[0] * size[1] > speed.MAX_PIXELS), op_types


@pytest.mark.parametrize("size", [2, 4])
def test_small_picture_convolution_in_bfloat16_is_as_close_as_keras(size):
    """Under mixed_bfloat16 the summed products stay within bfloat16's rounding of the exact
    float32 convolution, as Keras' own Conv2D does (sums in float32, not bfloat16)."""
    x = np.maximum(np.random.default_rng(2).normal(size=(16, size, size, 256)), 0).astype("float32")
    exact = keras.layers.Conv2D(64, 3, padding="same", dtype="float32")
    exact.build(x.shape)
    keras_bf16, ours = conv_pair((size, size), 3, "same", "mixed_bfloat16", filters=64, channels=256)
    for layer in (keras_bf16, ours):
        layer.set_weights(exact.get_weights())
    outputs = {
        name: np.asarray(layer(x), dtype="float32")
        for name, layer in (("exact", exact), ("keras", keras_bf16), ("ours", ours))
    }
    assert ours(x).dtype == "bfloat16"
    errors = {name: np.mean(np.abs(outputs[name] - outputs["exact"])) for name in ("keras", "ours")}
    scale = np.mean(np.abs(outputs["exact"]))
    assert errors["ours"] < 3 * errors["keras"] and errors["ours"] < 1e-2 * scale, (errors, scale)


OPTIMIZERS = [
    lambda: keras.optimizers.Adam(learning_rate=0.01),
    lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: keras.optimizers.SGD(0.05, momentum=0.8),
]


def run_updates(optimizer, steps=4):
    weights = [
        keras.Variable(np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)),
        keras.Variable(np.arange(5, dtype="float32")),
    ]
    for step in range(steps):
        gradients = [
            tf.constant(np.sin(np.arange(12) + step).reshape(3, 4), tf.float32),
            tf.constant(np.cos(np.arange(5) * step), tf.float32),
        ]
        optimizer.apply(gradients, weights)
    return [w.numpy() for w in weights]


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_fused_optimizer_updates_exactly_like_keras(make):
    fast = make()
    assert speed_up_optimizer(fast) in ("Adam", "SGD")
    assert type(fast) in (keras.optimizers.Adam, keras.optimizers.SGD)  # still Keras' class
    for mine, theirs in zip(run_updates(fast), run_updates(make())):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)  # float rounding only
    assert not np.allclose(run_updates(make())[0], np.linspace(-1, 1, 12).reshape(3, 4))  # it moved


@pytest.mark.parametrize("make, slots", [(OPTIMIZERS[0], "ADAM_SLOTS"), (OPTIMIZERS[1], "SGD_SLOTS")])
def test_fused_optimizer_falls_back_to_keras_with_one_warning(make, slots, monkeypatch):
    """A Keras release that keeps the optimizer's state under other private names: the
    update falls back to Keras' own code, warns once, and computes the same."""
    monkeypatch.setattr(speed, slots, ("_renamed_in_a_future_keras",))
    fast = make()
    speed_up_optimizer(fast)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run_updates(fast)
    fallbacks = [w for w in caught if "other names" in str(w.message)]
    assert len(fallbacks) == 1 and issubclass(fallbacks[0].category, RuntimeWarning)
    for mine, theirs in zip(results, run_updates(make())):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)


def test_auto_means_only_without_a_gpu_or_tpu(monkeypatch):
    assert speedups_enabled("auto") is True  # this machine has neither
    assert speedups_enabled(False) is False and speedups_enabled(True) is True
    monkeypatch.setattr(speed, "accelerator_present", lambda: True)
    assert speedups_enabled("auto") is False and speedups_enabled(True) is True
    assert SpeedUps("auto").enabled is False
    with pytest.raises(ValueError, match=r"speedups must be one of \('auto', True, False\), got 'yes'"):
        SpeedUps("yes")


def small_fit(speedups, epochs=2):
    keras.utils.set_random_seed(5)
    dataset = make_synthetic(per_class=4, test_per_class=1, seed=5)
    model = compile_like_article(build_vgg16(**NARROW))  # the article's 13+13: test_swapped_model_...
    callback = SpeedUps(speedups)
    history = model.fit(
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        batch_size=16,
        epochs=epochs,
        shuffle=False,
        callbacks=[callback],
        verbose=0,
    )
    return model, callback, history.history


def test_training_with_and_without_speedups_follows_the_same_path():
    fast, callback, fast_history = small_fit(True)
    plain, unused, plain_history = small_fit(False)
    assert callback.swapped == {"batchnorm": 5, "conv": 5, "optimizer": "Adam"}  # NARROW: 5 blocks of 1
    assert unused.swapped == {} and not speedups_applied(plain)
    # Adam magnifies rounding in tiny gradients, so the paths drift apart a little
    np.testing.assert_allclose(fast_history["loss"], plain_history["loss"], rtol=1e-2)
    assert fast.get_config() == plain.get_config()  # the same layers, as a saved file holds them
    assert type(fast.optimizer) is type(plain.optimizer) is keras.optimizers.Adam
    assert int(fast.optimizer.iterations) == int(plain.optimizer.iterations) == 6
