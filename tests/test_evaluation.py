"""Evaluation: confusion matrix, per-class accuracy, mistakes, flip averaging, own pictures."""

import keras
import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

from vggcifar.evaluation import (  # noqa: E402
    PictureError,
    accuracy,
    check_inputs,
    class_report,
    confident_mistakes,
    confusion_matrix,
    per_class_accuracy,
    predict_picture,
    predict_probabilities,
    read_picture,
    top_classes,
    upload_picture,
)
from vggcifar.plots import (  # noqa: E402
    plot_comparison,
    plot_confusion_matrix,
    plot_schedule,
    show_mistakes,
)
from vggcifar.saving import load_saved_model  # noqa: E402

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def test_confusion_matrix_of_a_hand_made_case():
    true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 0, 1, 1, 2, 2, 2, 0, 2]
    expected = [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    matrix = confusion_matrix(true, predicted, num_classes=3)
    assert matrix.tolist() == expected and matrix.sum() == 9
    assert per_class_accuracy(matrix) == pytest.approx([2 / 3, 1 / 2, 3 / 4])


def test_a_class_without_pictures_has_no_accuracy_not_zero():
    matrix = confusion_matrix([0, 0, 1], [0, 1, 1], num_classes=3)
    shares = per_class_accuracy(matrix)
    assert shares[:2] == pytest.approx([0.5, 1.0]) and np.isnan(shares[2])
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        confusion_matrix([0, 1, 2], [0, 1], 3)


def test_most_confident_mistakes_come_first_and_right_answers_never():
    probabilities = np.array(
        [
            [0.9, 0.1],  # right
            [0.3, 0.7],  # wrong, 0.7
            [0.01, 0.99],  # wrong, 0.99
            [0.45, 0.55],  # wrong, 0.55
            [0.2, 0.8],
        ]
    )  # right
    labels = [0, 0, 0, 0, 1]
    assert confident_mistakes(probabilities, labels).tolist() == [2, 1, 3]
    assert confident_mistakes(probabilities, labels, count=1).tolist() == [2]
    assert accuracy(probabilities, labels) == pytest.approx(0.4)


def test_top_classes_are_sorted_with_their_probabilities():
    top = top_classes([0.1, 0.5, 0.15, 0.25], ("a", "b", "c", "d"), k=3)
    assert top == [("b", 0.5), ("d", 0.25), ("c", 0.15)]


def left_or_right_model():
    """Says "left" (class 0) when the left half is brighter, "right" otherwise."""
    inputs = keras.Input((4, 4, 1))
    weights = np.zeros((16, 2), dtype="float32")
    for row in range(4):
        weights[row * 4 + 0 : row * 4 + 2, 0] = 5.0
        weights[row * 4 + 2 : row * 4 + 4, 1] = 5.0
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([weights, np.zeros(2, dtype="float32")])
    return keras.Model(inputs, outputs)


def test_flip_averaging_averages_the_picture_and_its_mirror():
    model = left_or_right_model()
    bright_left = np.zeros((1, 4, 4, 1), dtype=np.uint8)
    bright_left[:, :, :2] = 255
    plain = predict_probabilities(model, bright_left)
    assert plain[0].argmax() == 0 and plain[0, 0] > 0.99
    averaged = predict_probabilities(model, bright_left, flip_average=True)
    mirrored = predict_probabilities(model, bright_left[:, :, ::-1])
    assert averaged == pytest.approx((plain + mirrored) / 2)
    assert averaged[0] == pytest.approx([0.5, 0.5])  # this model sees no more than the flip
    assert averaged.sum(axis=1) == pytest.approx([1.0])


def test_read_picture_cuts_the_middle_square_and_shrinks_it(tmp_path):
    wide = np.zeros((40, 120, 3), dtype=np.uint8)
    wide[:, 40:80] = (255, 0, 0)  # a red square in the middle, black on both sides
    Image.fromarray(wide).save(tmp_path / "wide.jpg", quality=95)
    pixels = read_picture(tmp_path / "wide.jpg")
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert pixels[:, 4:28, 0].min() > 200 and pixels[:, 4:28, 1:].max() < 60  # the red middle fills it
    Image.fromarray(np.full((50, 50), 77, dtype=np.uint8), mode="L").save(tmp_path / "grey.png")
    assert read_picture(tmp_path / "grey.png").shape == (32, 32, 3)  # grey becomes RGB


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: d, "not found \\(or it is a folder\\)"),
        (lambda d: _write(d / "notes.txt", b"just some text"), "could not be read as a picture"),
        (lambda d: _write(d / "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20), "could not be read"),
    ],
)
def test_unreadable_pictures_get_a_clear_message(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(PictureError, match=message) as caught:
        read_picture(path)
    assert str(path) in str(caught.value) and "JPEG, PNG" in str(caught.value)


def _write(path, content):
    path.write_bytes(content)
    return path


def test_predict_picture_gives_three_classes(tmp_path):
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")]
    )
    Image.fromarray(np.full((64, 64, 3), 200, dtype=np.uint8)).save(tmp_path / "mine.png")
    pixels, top = predict_picture(model, tmp_path / "mine.png", ("w", "x", "y", "z"))
    assert pixels.shape == (32, 32, 3) and len(top) == 3
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert sum(p for _, p in top) < 1.0 + 1e-6


def test_upload_outside_colab_says_to_use_a_path():
    with pytest.raises(PictureError, match="Google Colab only"):
        upload_picture()


def test_evaluation_inputs_are_checked_before_any_work(tmp_path):
    (tmp_path / "m.weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="model_path must name a whole-model file ending in .keras"):
        check_inputs(model_path=str(tmp_path / "m.weights.h5"))
    with pytest.raises(FileNotFoundError, match="model_path: model file not found"):
        check_inputs(model_path=str(tmp_path / "none.keras"))
    with pytest.raises(PictureError, match="picture .*: no such file"):
        check_inputs(picture=str(tmp_path / "cat.jpg"))
    with pytest.raises(ValueError, match="upload must be True or False"):
        check_inputs(upload="yes")
    with pytest.raises(ValueError, match="a .weights.h5 file holds weights only"):
        load_saved_model(tmp_path / "m.weights.h5")
    check_inputs()  # the defaults are fine


def test_evaluation_figures():
    matrix = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    fig = plot_confusion_matrix(matrix, ("cat", "dog", "ship"))
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == sorted(str(v) for v in matrix.flat)
    pictures = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    probabilities = np.array([[0.2, 0.8, 0.0]] * 4)
    fig = show_mistakes(pictures, [0, 0, 2, 2], probabilities, [0, 2], ("cat", "dog", "ship"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["cat\n→ dog 80%", "ship\n→ dog 80%"]
    history = {
        "epoch": [1, 2],
        "accuracy": [0.3, 0.5],
        "val_accuracy": [0.2, 0.4],
        "loss": [2.0, 1.5],
        "val_loss": [2.1, 1.7],
    }
    fig = plot_comparison({"article": history, "improved": history})
    assert len(fig.axes[0].lines) == 4
    fig = plot_schedule(lambda step: 0.1 * step / 10, total_steps=10, steps_per_epoch=5)
    assert fig.axes[0].lines[0].get_ydata()[-1] == pytest.approx(0.1)


def test_class_report_best_first_with_the_most_common_confusion():
    matrix = confusion_matrix([0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 0, 1, 1, 2, 2, 2, 0, 2], 3)
    report = class_report(matrix, ("cat", "dog", "ship"))
    assert [row["class"] for row in report] == ["ship", "cat", "dog"]
    assert report[0] == {"class": "ship", "pictures": 4, "accuracy": 0.75, "most_often_taken_for": "cat"}
    perfect = class_report(confusion_matrix([0, 1], [0, 1], 2), ("a", "b"))
    assert [row["most_often_taken_for"] for row in perfect] == [None, None]
