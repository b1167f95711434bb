import keras
import numpy as np
import pytest

from vggcifar.model import (ARTICLE_PARAMS, VGG16_BLOCKS, SmallPictureConv2D, build_vgg16,
                            count_params)


@pytest.fixture(scope="module")
def article_model():
    return build_vgg16()


def test_parameter_counts_match_the_article(article_model):
    assert count_params(article_model) == ARTICLE_PARAMS
    assert article_model.count_params() == 33_655_114


def test_layer_names_follow_the_article(article_model):
    names = [layer.name for layer in article_model.layers]
    convs = [f"block{b}_conv{i}" for b, (n, _) in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1)]
    assert [n for n in names if "_conv" in n] == convs
    assert [n for n in names if n.startswith("bn")] == [f"bn{i}" for i in range(1, 14)]
    assert [n for n in names if n.endswith("_pool")] == [f"block{b}_pool" for b in range(1, 6)]
    assert names[-4:] == ["flatten", "fc1", "fc2", "predictions"]


def test_output_shapes_halve_block_by_block(article_model):
    shape = lambda name: tuple(article_model.get_layer(name).output.shape[1:])  # noqa: E731
    assert shape("block1_conv1") == (32, 32, 64)
    assert [shape(f"block{b}_pool") for b in range(1, 6)] == [
        (16, 16, 64), (8, 8, 128), (4, 4, 256), (2, 2, 512), (1, 1, 512)]
    assert [shape(n) for n in ("flatten", "fc1", "fc2", "predictions")] == [(512,), (4096,), (4096,), (10,)]


def test_every_convolution_is_followed_by_batchnorm_then_relu(article_model):
    layers = article_model.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.kernel_size == (3, 3) and layer.padding == "same" and layer.strides == (1, 1)
            assert isinstance(layers[i + 1], keras.layers.BatchNormalization)
            assert layers[i + 2].get_config()["activation"] == "relu"


def test_predictions_are_probabilities(article_model):
    probabilities = article_model.predict(np.random.rand(3, 32, 32, 3).astype("float32"), verbose=0)
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_without_batchnorm_loses_exactly_its_parameters():
    counts = count_params(build_vgg16(batch_norm=False))
    assert counts["non_trainable"] == 0
    assert counts["total"] == ARTICLE_PARAMS["total"] - 2 * ARTICLE_PARAMS["non_trainable"]


def test_dropout_and_l2_options():
    model = build_vgg16(dropout=0.5, l2=1e-4)
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        "dropout1", "dropout2"]
    assert model.get_layer("dropout1").rate == 0.5
    assert count_params(model) == ARTICLE_PARAMS  # neither adds parameters
    model(np.zeros((1, 32, 32, 3), "float32"))
    assert len(model.losses) == 16  # one L2 penalty per convolution and dense kernel


def test_other_class_counts_and_input_shapes():
    five = build_vgg16(num_classes=5)
    assert five.output_shape == (None, 5)
    assert count_params(five)["total"] == ARTICLE_PARAMS["total"] - 5 * 4097
    bigger = build_vgg16(input_shape=(64, 64, 3))
    assert bigger.get_layer("flatten").output.shape[1] == 2 * 2 * 512


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 1}, "num_classes"),
    ({"input_shape": (16, 16, 3)}, "at least 32x32"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"dropout": 1.0}, "dropout"),
    ({"l2": -1}, "l2"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_vgg16(**kwargs)


def test_fused_batchnorm_has_the_same_weights_and_maths():
    x = np.random.default_rng(0).random((16, 32, 32, 3), dtype="float32")
    keras.utils.set_random_seed(3)
    plain = build_vgg16(fc_units=16)
    keras.utils.set_random_seed(3)
    fused = build_vgg16(fc_units=16, fused_batchnorm=True)
    assert isinstance(fused.get_layer("bn1"), keras.layers.BatchNormalization)
    assert count_params(fused)["non_trainable"] == ARTICLE_PARAMS["non_trainable"]
    for model in (plain, fused):  # move the statistics away from their start values
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.1))
                layer.moving_variance.assign(np.full(layer.moving_variance.shape, 2.0))
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-5)
    # training mode: batch statistics in both
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-4)


def test_folded_copy_predicts_the_same_without_batchnorm():
    from vggcifar.model import fold_batchnorm
    keras.utils.set_random_seed(4)
    model = build_vgg16(fc_units=32)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([np.linspace(0.5, 1.5, n), np.linspace(-0.2, 0.2, n),
                               np.linspace(-0.1, 0.1, n), np.linspace(0.5, 2.0, n)])
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert isinstance(folded.get_layer("block5_conv3"), SmallPictureConv2D)
    assert [l.name for l in folded.layers if "conv" in l.name] == [
        l.name for l in model.layers if "conv" in l.name]
    x = np.random.default_rng(1).random((8, 32, 32, 3), dtype="float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="no BatchNormalization"):
        fold_batchnorm(folded)


@pytest.mark.parametrize("size, kernel, padding", [
    ((2, 2), 3, "same"), ((4, 4), 3, "same"), ((4, 4), 3, "valid"), ((1, 1), 3, "same"),
    ((2, 4), (2, 3), "same"), ((3, 4), 2, "valid"), ((4, 4), 5, "same"), ((8, 8), 3, "same")])
def test_small_picture_conv_gives_keras_outputs_and_gradients(size, kernel, padding):
    """Same outputs and gradients as Conv2D: on at most 16 pixels they are matmuls (odd
    and even kernels, TensorFlow's uneven "same" padding), on 8x8 Keras' own code."""
    import tensorflow as tf

    x = tf.random.normal((5, *size, 6), seed=1)
    plain = keras.layers.Conv2D(7, kernel, padding=padding)
    plain.build(x.shape)
    mine = SmallPictureConv2D(7, kernel, padding=padding)
    mine.build(x.shape)
    mine.set_weights(plain.get_weights())
    results = []
    for layer in (plain, mine):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for theirs, ours in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
    # the forward pass really is matrix products on small pictures, a convolution on others
    graph = tf.function(mine).get_concrete_function(tf.TensorSpec(x.shape)).graph
    op_types = {op.type for op in graph.get_operations()}
    assert ("Conv2D" in op_types) == (size[0] * size[1] > 16), op_types


def test_small_picture_conv_leaves_gpus_to_keras(monkeypatch):
    """With a GPU or TPU visible the layer is a plain Conv2D (the matmuls were measured on CPUs)."""
    import tensorflow as tf

    import vggcifar.model

    layer = SmallPictureConv2D(4, 3, padding="same")
    layer.build((1, 2, 2, 3))
    op_types = lambda: {op.type for op in tf.function(layer).get_concrete_function(  # noqa: E731
        tf.TensorSpec((1, 2, 2, 3))).graph.get_operations()}
    assert "Conv2D" not in op_types()
    monkeypatch.setattr(vggcifar.model, "_cpu_only", lambda: False)
    assert "Conv2D" in op_types()


@pytest.mark.parametrize("size", [2, 4])
def test_small_picture_conv_in_bfloat16_is_as_close_as_keras_conv(size):
    """Under mixed_bfloat16 the summed matmuls stay within bfloat16's rounding of the
    exact float32 convolution, as Keras' own Conv2D does (sums in float32, not bfloat16)."""
    x = np.maximum(np.random.default_rng(2).normal(size=(16, size, size, 256)), 0).astype("float32")
    layers = {}
    for name, cls in (("exact", keras.layers.Conv2D), ("keras", keras.layers.Conv2D),
                      ("ours", SmallPictureConv2D)):
        layers[name] = cls(64, 3, padding="same",
                           dtype="float32" if name == "exact" else "mixed_bfloat16")
        layers[name].build(x.shape)
        layers[name].set_weights(layers["exact"].get_weights())
    outputs = {name: np.asarray(layer(x), dtype="float32") for name, layer in layers.items()}
    assert layers["ours"](x).dtype == "bfloat16"
    errors = {name: np.mean(np.abs(outputs[name] - outputs["exact"])) for name in ("keras", "ours")}
    scale = np.mean(np.abs(outputs["exact"]))
    assert errors["ours"] < 3 * errors["keras"] and errors["ours"] < 1e-2 * scale, (errors, scale)


def test_small_picture_conv_model_is_the_article_model(tmp_path):
    model = build_vgg16(small_picture_conv=True, fused_batchnorm=True)
    assert count_params(model) == ARTICLE_PARAMS
    assert isinstance(model.get_layer("block5_conv3"), SmallPictureConv2D)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.get_layer("block1_conv1"), SmallPictureConv2D)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
