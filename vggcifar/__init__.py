"""vggcifar — VGG16 with BatchNormalization on CIFAR-10, step by step, in Keras 3.

One module per step of the article — :mod:`~vggcifar.data`, :mod:`~vggcifar.model`,
:mod:`~vggcifar.training`, :mod:`~vggcifar.plots`, :mod:`~vggcifar.saving` — keeping the
code the notebooks show; around them what is not the lesson: :mod:`~vggcifar.settings`
(every default and the parameter check), :mod:`~vggcifar.runs` (the run folder, a Keras
callback), :mod:`~vggcifar.environment` (versions, GPU check, precision, strategy),
:mod:`~vggcifar.folders` and :mod:`~vggcifar.files` (reading pictures, writing files
safely), :mod:`~vggcifar.language` (every message in English or Japanese, as the notebook's
``VGGCIFAR_LANGUAGE`` says); beyond the article :mod:`~vggcifar.improvements` and
:mod:`~vggcifar.evaluation`; the opt-in CPU speed-ups, :mod:`~vggcifar.speed`;
:mod:`~vggcifar.backends` (what differs between Keras on TensorFlow, JAX and PyTorch) and
:mod:`~vggcifar.curves` (TensorBoard's curves on each of them); and
:mod:`~vggcifar.sweeps` with the command line :mod:`~vggcifar.cli`
(``python -m vggcifar run`` / ``sweep``), which runs notebooks through
:mod:`~vggcifar.runner` and finds them with :mod:`~vggcifar.locate` (shipped in the
package, or a clone's).
"""

import importlib.util
import os
import sys

# Hide TensorFlow's C++ start-up messages (INFO and WARNING) unless the user chose a
# level: students took them for errors. Python warnings and exceptions still show.
# TensorFlow reads this when its process starts: it reaches the notebooks' kernels that
# the command line starts, not a process that is already running (see below).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

#: Where the project lives; the notebooks' "Open in Colab" links point here.
REPOSITORY = "https://github.com/vggcifar/vggcifar"


def _choose_a_backend_without_tensorflow():
    """Where TensorFlow is missing and nothing chose a backend, let Keras use JAX (or PyTorch).

    Keras starts on TensorFlow unless ``KERAS_BACKEND`` or ``~/.keras/keras.json`` says
    otherwise, and then fails to import where TensorFlow is not installed, as on a
    machine that has only JAX. Nothing changes where TensorFlow is installed, where a
    backend was chosen, or once Keras is imported (it reads the choice once).
    """
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return
    if importlib.util.find_spec("tensorflow") is not None:
        return
    config = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json")
    try:
        with open(config) as file:
            if '"tensorflow"' not in file.read():
                return  # keras.json names another backend (or none): Keras' own choice stands
    except OSError:
        pass
    for backend in ("jax", "torch"):
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


def _import_tensorflow_quietly():
    """In a notebook's kernel, import TensorFlow with its C++ start-up lines sent nowhere.

    A kernel that is already running ignores ``TF_CPP_MIN_LOG_LEVEL`` set now, so the
    notebooks' first ``import vggcifar`` imports TensorFlow itself, with the process's
    standard error pointed at the null device for that moment ("Could not find cuda
    drivers", "failed call to cuInit" and the like are notes, not errors). Only in a
    Jupyter kernel, only where Keras runs on TensorFlow and TensorFlow is not imported
    yet; scripts and the command line import nothing here.
    """
    if "ipykernel" not in sys.modules or "tensorflow" in sys.modules:
        return
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved, nowhere = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, 2)
    try:
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")  # where "failed call to cuInit" is said
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(nowhere)


_choose_a_backend_without_tensorflow()
_import_tensorflow_quietly()
