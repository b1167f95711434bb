import keras
import numpy as np
import pytest

from vggcifar.model import ARTICLE_PARAMS, VGG16_BLOCKS, build_vgg16, count_params

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


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
        (16, 16, 64),
        (8, 8, 128),
        (4, 4, 256),
        (2, 2, 512),
        (1, 1, 512),
    ]
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
        "dropout1",
        "dropout2",
    ]
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


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (16, 16, 3)}, "at least 32x32"),
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"dropout": 1.0}, "dropout"),
        ({"l2": -1}, "l2"),
        ({"blocks": ()}, "blocks must be a non-empty tuple"),
        ({"blocks": ((2, 0),)}, "blocks"),
        ({"blocks": (64, 128)}, "blocks"),
        ({"blocks": ((1, 8, 3),)}, "blocks"),
        ({"blocks": ((1, 8),) * 6}, "at least 64x64"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_vgg16(**kwargs)


def test_smaller_blocks_keep_the_article_layer_names():
    """blocks=... builds a network of the same kind, a few KB instead of 135 MB (for tests)."""
    tiny = build_vgg16(blocks=((1, 8), (2, 8), (1, 16)), fc_units=16)
    convs = [layer.name for layer in tiny.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer.name for layer in tiny.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert convs == ["block1_conv1", "block2_conv1", "block2_conv2", "block3_conv1"]
    assert norms == ["bn1", "bn2", "bn3", "bn4"]  # counted across the network, as the article does
    assert tiny.get_layer("flatten").output.shape[1] == 4 * 4 * 16  # three poolings: 32 -> 4
    assert tiny.get_layer("block2_conv2").kernel.shape == (3, 3, 8, 8)
    assert count_params(build_vgg16(blocks=((1, 8),) * 5, fc_units=16))["total"] < 5_000


def test_the_model_is_made_of_keras_layers_only():
    """No class of this package in the model: its saved files load with Keras alone."""
    model = build_vgg16(dropout=0.5, l2=1e-4)
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    assert "vggcifar" not in model.to_json()
