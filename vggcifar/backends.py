"""The Keras backend that runs the model: TensorFlow, JAX or PyTorch, and what it sees.

Keras 3 runs the same model code on three frameworks; ``KERAS_BACKEND`` picks one
before ``import keras`` (TensorFlow when unset). Colab's GPU runtimes have all three
installed and use TensorFlow; its TPU runtime has Keras on JAX and no TensorFlow at
all. The article's code (``Sequential``, ``compile``, ``fit``, ``save``) is the same
on each; what differs lives here, so that the rest of the package asks one question
and gets one answer on every backend:

* :func:`accelerators` — the GPUs (name, compute capability) and TPU cores in sight;
* :func:`make_strategy` — how a model is spread over several devices: a
  ``tf.distribute`` strategy on TensorFlow, a ``keras.distribution.DataParallel``
  on JAX (every local device takes an equal share of each batch), one device on
  PyTorch (Keras has no multi-device training for it yet);
* :func:`use_strategy` — that strategy made global, for the notebooks' own ``fit``;
* :func:`strategy_record` — what a run folder records about it.

Only TensorFlow's branch imports TensorFlow, so the package imports and trains
where it is not installed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass, field

import keras

#: Each backend's framework: its Python module and the name a student knows it by.
FRAMEWORKS = {
    "tensorflow": ("tensorflow", "TensorFlow"),
    "jax": ("jax", "JAX"),
    "torch": ("torch", "PyTorch"),
}


def backend():
    """The Keras backend in use: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return keras.backend.backend()


def on_tensorflow():
    """True where TensorFlow runs the model (the design card's backend and the default)."""
    return backend() == "tensorflow"


def framework():
    """``(name, version)`` of the framework under Keras, e.g. ``("JAX", "0.10.2")``."""
    module, label = FRAMEWORKS.get(backend(), (backend(), backend()))
    return label, importlib.import_module(module).__version__


@dataclass
class Accelerators:
    """What the backend can compute on besides the CPU."""

    gpus: list = field(default_factory=list)  # (name, (major, minor) compute capability) per GPU
    tpu_cores: int = 0  # TPU devices the backend sees (a Colab TPU v5e-1: 1; a v2-8: 8)


def accelerators():
    """The GPUs and TPU cores that the Keras backend sees."""
    found = Accelerators()
    if backend() == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            found.gpus.append(
                (details.get("device_name", "GPU"), tuple(details.get("compute_capability", (0, 0))))
            )
        found.tpu_cores = len(tf.config.list_logical_devices("TPU"))
        if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
            found.tpu_cores = max(found.tpu_cores, 1)  # a TPU over the network: its cores show once started
    elif backend() == "jax":
        import jax

        for device in jax.devices():
            if device.platform == "gpu":
                capability = getattr(device, "compute_capability", "0.0")
                found.gpus.append((device.device_kind, tuple(int(p) for p in str(capability).split(".")[:2])))
            elif device.platform == "tpu":
                found.tpu_cores += 1
    elif backend() == "torch":
        import torch

        for index in range(torch.cuda.device_count()):
            found.gpus.append((torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index)))
    return found


class OneDevice:
    """No distribution: the model lives on one device (the backend's default)."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def make_strategy(kind):
    """The object whose ``scope()`` a model is built and compiled in, for ``kind``.

    ``kind`` is ``"default"`` (one device), ``"mirrored"`` (every GPU, or every CPU
    device where there is none) or ``"tpu"``. On JAX both of the last two mean a
    ``DataParallel`` over all local devices; on PyTorch only ``"default"`` exists.
    """
    if backend() == "tensorflow":
        import tensorflow as tf

        if kind == "tpu":
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        if kind == "mirrored":
            gpus = tf.config.list_logical_devices("GPU")
            return tf.distribute.MirroredStrategy(
                [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            )
        return tf.distribute.get_strategy()
    if backend() == "jax" and kind != "default":
        import jax

        devices = jax.devices()
        return keras.distribution.DataParallel(devices=devices) if len(devices) > 1 else OneDevice()
    return OneDevice()


def replicas(strategy):
    """How many devices share each batch under ``strategy``."""
    if isinstance(strategy, keras.distribution.DataParallel):
        return int(strategy.device_mesh.devices.size)
    return int(strategy.num_replicas_in_sync)


def use_strategy(strategy):
    """Make ``strategy`` the global one, so that models built and compiled afterwards use it."""
    if backend() == "tensorflow":
        import tensorflow as tf

        if strategy is not tf.distribute.get_strategy():
            tf.distribute.experimental_set_strategy(strategy)
    elif backend() == "jax":
        keras.distribution.set_distribution(None if isinstance(strategy, OneDevice) else strategy)


def global_replicas():
    """How many devices share each batch under the global strategy (see :func:`use_strategy`)."""
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_strategy().num_replicas_in_sync
    distribution = keras.distribution.distribution() if backend() == "jax" else None
    return replicas(distribution) if distribution is not None else 1


def strategy_record(model):
    """The strategy a run folder records: its class name and how many devices share a batch."""
    if backend() == "tensorflow":
        strategy = model.distribute_strategy
        return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync}
    distribution = keras.distribution.distribution() if backend() == "jax" else None
    if distribution is None:
        return {"strategy": OneDevice.__name__, "replicas": 1}
    return {"strategy": type(distribution).__name__, "replicas": replicas(distribution)}


#: Keras' PyTorch optimizers, each a subclass of a public optimizer of the same name.
TORCH_OPTIMIZERS = ("adadelta", "adagrad", "adam", "adamax", "adamw", "lion", "nadam", "rmsprop", "sgd")


def make_torch_optimizers_portable():
    """Let a ``.keras`` file saved with its optimizer on PyTorch load on the other backends.

    On PyTorch, ``keras.optimizers.Adam()`` is an instance of a PyTorch-only subclass, and
    ``model.save`` records that subclass's module (``keras.src.backend.torch.optimizers.
    torch_adam``). Loading the file where PyTorch is not installed then fails to import it
    (Keras 3.15; TensorFlow's and JAX's optimizers are the public classes themselves).
    Naming each subclass after the public module, ``keras.optimizers``, makes the file
    record the public class, which every backend loads (and PyTorch turns into its
    subclass again). Called when vggcifar is imported with the PyTorch backend.
    """
    for name in TORCH_OPTIMIZERS:
        try:
            module = importlib.import_module(f"keras.src.backend.torch.optimizers.torch_{name}")
        except ImportError:  # a Keras release that moved them: files keep Keras' own naming
            continue
        for value in vars(module).values():
            public = getattr(keras.optimizers, getattr(value, "__name__", ""), None)
            is_subclass = isinstance(value, type) and isinstance(public, type) and issubclass(value, public)
            if is_subclass and value is not public:
                value.__module__ = "keras.optimizers"


def make_ops_deterministic():
    """Repeatable results from run to run, at some cost in speed (``deterministic=True``).

    TensorFlow and PyTorch each have a switch, which stays on for the session. JAX's
    CPU and TPU computations are repeatable already; on a GPU, XLA needs the flag
    ``--xla_gpu_deterministic_ops=true`` in ``XLA_FLAGS`` before JAX starts.
    """
    if backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


if backend() == "torch":
    make_torch_optimizers_portable()
