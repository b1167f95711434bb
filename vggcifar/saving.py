"""Step 5 — saving: the model in three files, reloaded and checked.

=============  ==========================  ==========================================
kind           file                        what it holds
=============  ==========================  ==========================================
``keras``      ``cifar10-CNN.keras``       the whole model as it is in memory, Keras 3's
                                           native format: with the compile settings and,
                                           once trained, the optimizer's state
``weights``    ``cifar10-CNN.weights.h5``  the weights only; needs the code that builds
                                           the model
``legacy_h5``  ``cifar10-CNN.h5``          the layers and weights in the article's
                                           (legacy) HDF5 format, not compiled
=============  ==========================  ==========================================

**Sizes.** The article's model has 33,655,114 parameters of 4 bytes: 135 MB of
weights. Adam keeps two more numbers per trained weight (its running averages of
the gradient and of its square), so a file with the optimizer's state is about 3x
that, 404 MB. Only the ``.keras`` file keeps that state: it is the format to continue
training from. The other two exist to predict (or to read from older code) and get
the weights alone, which :func:`without_optimizer` gives them through public Keras
API. (Keras 3's ``save_weights`` and legacy ``.h5`` writer both take the compiled
optimizer's variables along; in Keras 3.15 ``keras.models.clone_model`` compiles its
copy too, so the twin is rebuilt from the model's config instead.)

:func:`save_article_files` is the code that notebook 05 shows (``# @save``). Every file
is written under a temporary name and renamed when complete
(:func:`vggcifar.files.replacing`), so a save that is cut off never destroys a good
file saved before. The files hold plain Keras objects only: they load with Keras
alone, without this package.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from .files import replacing
from .language import say
from .layout import ARTICLE_FILES

FILES = ARTICLE_FILES  # the names, kept with the run folder's other names


def without_optimizer(model):
    """An uncompiled twin of ``model``: the same layers (and precision), a copy of its weights.

    Saving the twin writes the weights without the optimizer's state, a third of the
    size for Adam; the model itself is left as it is. The twin is built from the
    model's config, as ``keras.models.load_model`` would build it.
    """
    twin = type(model).from_config(model.get_config())
    twin.set_weights(model.get_weights())
    return twin


def save_article_files(model, folder):
    """Save model in the article's three files in folder; returns {kind: path}."""
    folder = Path(folder)
    paths = {kind: folder / name for kind, name in FILES.items()}
    with replacing(paths["keras"]) as path:
        model.save(path)  # the whole model, in Keras 3's format: can continue training
    weights_only = without_optimizer(model)  # the same weights, no optimizer: a third of the size
    with replacing(paths["weights"]) as path:
        weights_only.save_weights(path)  # the weights only: the name must end in .weights.h5
    with replacing(paths["legacy_h5"]) as path:
        weights_only.save(path)  # layers and weights, in the article's HDF5 format (legacy)
    return paths


def check_model_file(path, name="model_path"):
    """Raise unless ``path`` is an existing whole-model file (``.keras``, or legacy ``.h5``)."""
    path = Path(str(path))
    if path.suffix not in (".keras", ".h5") or path.name.endswith(".weights.h5"):
        raise ValueError(
            say(
                en=f"{name} must name a whole-model file ending in .keras (or a legacy .h5), got "
                f"{str(path)!r}; a .weights.h5 file holds weights only: load it into a built model with "
                "model.load_weights",
                ja=f"{name} には、.keras(または古い形式の .h5)で終わる、"
                f"モデル全体のファイルを指定してください(指定された値: {str(path)!r})。.weights.h5 "
                "のファイルには重みしか入っていないので、構築したモデルに model.load_weights "
                "で読み込んでください",
            )
        )
    if not path.is_file():
        raise FileNotFoundError(
            say(
                en=f"{name}: model file not found: {str(path)!r}",
                ja=f"{name}: モデルのファイルが見つかりません: {str(path)!r}",
            )
        )
    return path


def load_saved_model(path):
    """``keras.models.load_model`` with its safe mode spelled out, after checking the path.

    Safe mode refuses ``.keras`` files that would run Python code stored in them
    (``Lambda`` layers). It is not a sandbox: it has been bypassed (CVE-2025-1550,
    CVE-2025-9906, CVE-2026-1462, the last fixed in Keras 3.13.2), and before Keras
    3.11.3 it was ignored for ``.h5`` files (CVE-2025-9905). Load only model files
    you trust.
    """
    return keras.models.load_model(check_model_file(path, "path"), safe_mode=True)


def reload_model_files(paths, build):
    """Reload each saved file; the weights file goes into ``build()``, a freshly built model."""
    fresh = build()
    fresh.load_weights(paths["weights"])
    return {
        "keras": load_saved_model(paths["keras"]),
        "weights": fresh,
        "legacy_h5": load_saved_model(paths["legacy_h5"]),
    }


def prediction_differences(model, reloaded, x, batch_size=256):
    """Largest absolute difference between ``model``'s predicted probabilities and each reloaded model's."""
    expected = model.predict(x, batch_size=batch_size, verbose=0)
    return {
        kind: float(np.max(np.abs(other.predict(x, batch_size=batch_size, verbose=0) - expected)))
        for kind, other in reloaded.items()
    }
