"""Step 5 — saving: the model in three files, reloaded and checked.

=============  ==========================  =========================================
kind           file                        what it holds
=============  ==========================  =========================================
``keras``      ``cifar10-CNN.keras``       the whole model, Keras 3's native format
``weights``    ``cifar10-CNN.weights.h5``  the weights (and, in Keras 3, the optimizer's state);
                                           needs the code that builds the model
``legacy_h5``  ``cifar10-CNN.h5``          the whole model in the article's (legacy) HDF5 format
=============  ==========================  =========================================

Each file is written to a temporary name and then renamed, so an interrupted save
never destroys a good file saved earlier.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import keras
import numpy as np

from . import model as _model  # noqa: F401  registers FusedBatchNormalization for loading

FILES = {"keras": "cifar10-CNN.keras",
         "weights": "cifar10-CNN.weights.h5",
         "legacy_h5": "cifar10-CNN.h5"}


def _save_replacing(path, save):
    path = Path(path)
    tmp = path.with_name("tmp-" + path.name)  # keeps the suffix Keras checks
    save(str(tmp))
    os.replace(tmp, path)
    return path


def save_model_files(model, out_dir):
    """Save ``model`` in all three formats into ``out_dir``; returns ``{kind: path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "keras": _save_replacing(out_dir / FILES["keras"], model.save),
        "weights": _save_replacing(out_dir / FILES["weights"], model.save_weights),
        "legacy_h5": _save_replacing(out_dir / FILES["legacy_h5"],
                                     lambda path: _save_legacy_h5(model, path)),
    }


def _save_legacy_h5(model, path):
    # Keras' legacy HDF5 writer removes the optimizer from the model's own compile
    # settings (it pops the key from the live dict), so a later .keras save would
    # reload with the wrong optimizer. Keep a copy and put it back.
    compile_config = copy.deepcopy(getattr(model, "_compile_config", None))
    try:
        model.save(path)
    finally:
        if compile_config is not None:
            model._compile_config = compile_config


def check_model_file(path, name="model_path"):
    """Raise unless ``path`` is an existing whole-model file (``.keras``, or legacy ``.h5``)."""
    path = Path(str(path))
    if path.suffix not in (".keras", ".h5") or path.name.endswith(".weights.h5"):
        raise ValueError(f"{name} must name a whole-model file ending in .keras (or a legacy "
                         f".h5), got {str(path)!r}; a .weights.h5 file holds weights only: "
                         "load it into a built model with model.load_weights")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: model file not found: {str(path)!r}")
    return path


def load_saved_model(path):
    """Load a whole model (``.keras`` or legacy ``.h5``) with Keras' safe mode on.

    Safe mode refuses files that would run arbitrary Python code (lambda layers).
    """
    return keras.models.load_model(check_model_file(path, "path"), safe_mode=True)


def reload_model_files(paths, model):
    """Reload each saved file; the weights file goes into a fresh copy of ``model``'s layers."""
    fresh = keras.models.clone_model(model)  # same layers, new (random) weights
    with warnings.catch_warnings():
        # The file also holds Adam's state, which an uncompiled copy has no place for.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        fresh.load_weights(paths["weights"])
    return {"keras": load_saved_model(paths["keras"]),
            "weights": fresh,
            "legacy_h5": load_saved_model(paths["legacy_h5"])}


def prediction_differences(model, reloaded, x, batch_size=256):
    """Largest absolute difference between ``model``'s predicted probabilities and each reloaded model's."""
    expected = model.predict(x, batch_size=batch_size, verbose=0)
    return {kind: float(np.max(np.abs(other.predict(x, batch_size=batch_size, verbose=0)
                                      - expected)))
            for kind, other in reloaded.items()}
