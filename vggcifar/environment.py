"""The setup check every notebook starts with: versions, and is there a GPU?"""

from __future__ import annotations

import platform

GPU_HINT = ("No GPU found: training will be slow (an epoch of the full data takes tens of "
            "minutes on a CPU). On Colab: Runtime → Change runtime type → Hardware "
            "accelerator: GPU (T4), then run the notebook again. Without a GPU, use small "
            "settings such as subset=500, epochs=2.")


def environment_report(show=True):
    """Python, TensorFlow, Keras and NumPy versions and the GPUs TensorFlow sees."""
    import keras
    import numpy
    import tensorflow as tf

    gpus = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    report = {"python": platform.python_version(), "tensorflow": tf.__version__,
              "keras": keras.__version__, "numpy": numpy.__version__, "gpus": gpus}
    if show:
        print(f"Python {report['python']}  TensorFlow {report['tensorflow']}  "
              f"Keras {report['keras']}  NumPy {report['numpy']}")
        print(f"GPU: {', '.join(gpus)}" if gpus else GPU_HINT)
    return report
