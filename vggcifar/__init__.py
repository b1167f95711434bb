"""vggcifar — VGG16 with BatchNormalization on CIFAR-10, step by step, in Keras 3.

One module per step of the article — :mod:`~vggcifar.data`, :mod:`~vggcifar.model`,
:mod:`~vggcifar.training`, :mod:`~vggcifar.plots`, :mod:`~vggcifar.saving` — keeping the
code the notebooks show; around them what is not the lesson: :mod:`~vggcifar.settings`
(every default and the parameter check), :mod:`~vggcifar.runs` (the run folder, a Keras
callback), :mod:`~vggcifar.environment` (versions, GPU check, precision, strategy),
:mod:`~vggcifar.folders` and :mod:`~vggcifar.files` (reading pictures, writing files
safely); beyond the article :mod:`~vggcifar.improvements` and :mod:`~vggcifar.evaluation`;
the opt-in CPU speed-ups, :mod:`~vggcifar.speed`; and :mod:`~vggcifar.sweeps` with the
command line :mod:`~vggcifar.cli` (``python -m vggcifar run`` / ``sweep``), which finds
the notebooks it runs with :mod:`~vggcifar.locate` (shipped in the package, or a clone's).
"""

import os

# Hide TensorFlow's C++ start-up messages (INFO and WARNING) unless the user chose a
# level: students took them for errors. Python warnings and exceptions still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

#: Where the project lives; the notebooks' "Open in Colab" links point here.
REPOSITORY = "https://github.com/vggcifar/vggcifar"
