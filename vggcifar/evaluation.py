"""Step 7 — evaluation: what a trained model gets right and wrong, and your own pictures.

One accuracy figure hides a lot. This module works out, from a model's predicted
probabilities: the confusion matrix (which class is taken for which), the accuracy
of every class, the mistakes the model was most sure of, and the accuracy with
flip averaging (test-time augmentation). It also reads a picture of your own and
names its three most likely classes. The figures are drawn by :mod:`vggcifar.plots`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import pixels_to_float
from .folders import to_rgb
from .language import say
from .saving import check_model_file

#: Picture formats that :func:`read_picture` accepts: Pillow's decoders for common photos only.
PICTURE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
#: Largest photo decoded, in pixels (a 50-megapixel camera; about 150 MB as RGB).
MAX_PHOTO_PIXELS = 50_000_000


class PictureError(ValueError):
    """A picture file that cannot be used, with a message that says why."""


def predict_probabilities(model, pictures, batch_size=256, flip_average=False):
    """Class probabilities for uint8 pictures (n, height, width, 3), scaled as in training.

    ``flip_average=True`` also predicts every picture mirrored left-right and averages
    the two answers: test-time augmentation with the flip the model trained on.
    """
    x = pixels_to_float(pictures)
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    if flip_average:
        mirrored = model.predict(x[:, :, ::-1, :], batch_size=batch_size, verbose=0)
        probabilities = (probabilities + mirrored) / 2.0
    return np.asarray(probabilities, dtype="float64")


def accuracy(probabilities, labels):
    """Share of pictures whose most probable class is the true one."""
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels).reshape(-1)))


def confusion_matrix(true_labels, predicted_labels, num_classes):
    """``matrix[t, p]`` = how many pictures of class ``t`` were predicted as class ``p``."""
    true_labels = np.asarray(true_labels).reshape(-1)
    predicted_labels = np.asarray(predicted_labels).reshape(-1)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(
            f"true_labels and predicted_labels must have the same length, got "
            f"{len(true_labels)} and {len(predicted_labels)}"
        )
    matrix = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(matrix, (true_labels, predicted_labels), 1)
    return matrix


def per_class_accuracy(matrix):
    """Accuracy of every class: the diagonal over the row sums (NaN for a class with no pictures)."""
    matrix = np.asarray(matrix, dtype="float64")
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def class_report(matrix, class_names):
    """One row per class, best first: pictures, accuracy, and the class it is most often taken for."""
    matrix = np.asarray(matrix)
    shares = per_class_accuracy(matrix)
    wrong = matrix - np.diag(np.diag(matrix))
    rows = [
        {
            "class": class_names[k],
            "pictures": int(matrix[k].sum()),
            "accuracy": float(shares[k]),
            "most_often_taken_for": class_names[wrong[k].argmax()] if wrong[k].any() else None,
        }
        for k in range(len(class_names))
    ]
    return sorted(rows, key=lambda row: -np.nan_to_num(row["accuracy"], nan=-1.0))


def confident_mistakes(probabilities, labels, count=16):
    """Indices of the wrongly predicted pictures, the most confident mistake first."""
    labels = np.asarray(labels).reshape(-1)
    predicted = np.argmax(probabilities, axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def top_classes(probabilities, class_names, k=3):
    """The ``k`` most probable classes of one picture as ``[(name, probability), ...]``."""
    probabilities = np.asarray(probabilities).reshape(-1)
    best = np.argsort(-probabilities, kind="stable")[:k]
    return [(class_names[i], float(probabilities[i])) for i in best]


def read_picture(path, size=(32, 32)):
    """A picture file as uint8 pixels of ``size`` (height, width) with 3 colour channels.

    The middle of the picture is cut to the square shape of CIFAR-10's pictures, then
    shrunk to 32x32 (a CIFAR-10 picture shows its object in the middle, filling it).
    Only the decoders of :data:`PICTURE_FORMATS` are used, and a picture of more than
    :data:`MAX_PHOTO_PIXELS` pixels is refused before it is decoded. Raises
    :class:`PictureError` for a missing, unreadable or oversized file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise PictureError(
            say(
                en=f"picture {str(path)!r} not found (or it is a folder); give the path of a picture file "
                f"({', '.join(PICTURE_FORMATS)})",
                ja=f"画像 {str(path)!r} が見つかりません(またはフォルダです)。"
                f"画像ファイル({', '.join(PICTURE_FORMATS)})のパスを指定してください",
            )
        )
    try:
        with Image.open(path, formats=list(PICTURE_FORMATS)) as image:
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise PictureError(
                    say(
                        en=f"picture {str(path)!r} is {image.width}x{image.height} pixels, more than the "
                        f"{MAX_PHOTO_PIXELS:,} allowed; use a smaller copy",
                        ja=f"画像 {str(path)!r} は {image.width}x{image.height} ピクセルで、上限の "
                        f"{MAX_PHOTO_PIXELS:,} ピクセルを超えています。小さくしたコピーを使ってください",
                    )
                )
            image.draft("RGB", (8 * size[1], 8 * size[0]))  # JPEG: decode at a smaller scale
            image = ImageOps.exif_transpose(image)
            image = Image.fromarray(to_rgb(image))
            image = ImageOps.fit(image, (size[1], size[0]), method=Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, PictureError):
            raise
        raise PictureError(
            say(
                en=f"picture {str(path)!r} could not be read as a picture ({type(error).__name__}: {error}); "
                f"use a {', '.join(PICTURE_FORMATS)} file",
                ja=f"{str(path)!r} を画像として読み込めませんでした({type(error).__name__}: {error})。"
                f"{', '.join(PICTURE_FORMATS)} のファイルを使ってください",
            )
        ) from error
    return np.asarray(image, dtype="uint8")


def predict_picture(model, path, class_names, k=3):
    """Read a picture file, predict it, and return ``(pixels, [(class, probability), ...])``."""
    pixels = read_picture(path, size=tuple(model.input_shape[1:3]))
    probabilities = predict_probabilities(model, pixels[None])[0]
    return pixels, top_classes(probabilities, class_names, k)


def upload_picture(folder="."):
    """In Colab: ask for a picture file and save it in ``folder``; returns its path.

    Outside Colab there is nothing to upload with; set the ``picture`` parameter to a path.
    """
    try:
        from google.colab import files
    except ImportError:
        raise PictureError(
            say(
                en="upload works in Google Colab only; elsewhere set the picture parameter to the path of a "
                "picture file",
                ja="upload が使えるのは Google Colab だけです。ほかの場所では、パラメータ picture "
                "に画像ファイルのパスを指定してください",
            )
        ) from None
    uploaded = files.upload()  # shows a "Choose files" button and waits
    if not uploaded:
        raise PictureError(
            say(
                en="no file was uploaded; run the cell again and choose a picture",
                ja="ファイルがアップロードされませんでした。セルをもう一度実行して、画像を選んでください",
            )
        )
    name, content = next(iter(uploaded.items()))
    path = Path(folder) / Path(name).name
    path.write_bytes(content)
    return path


def check_inputs(model_path=None, picture=None, upload=False):
    """Check 07's own parameters before any long work; raise naming the bad one."""
    if model_path is not None:
        check_model_file(model_path, "model_path")
    if picture is not None and not Path(str(picture)).is_file():
        raise PictureError(
            say(
                en=f"picture {str(picture)!r}: no such file; give the path of a picture "
                f"({', '.join(PICTURE_FORMATS)}) or None",
                ja=f"picture {str(picture)!r}: そのファイルはありません。"
                f"画像({', '.join(PICTURE_FORMATS)})のパスか None を指定してください",
            )
        )
    if not isinstance(upload, bool):
        raise ValueError(
            say(
                en=f"upload must be True or False, got {upload!r}",
                ja=f"upload は True か False にしてください(指定された値: {upload!r})",
            )
        )
