"""The machine: versions, GPU check, and the fastest settings Keras offers on it.

* :func:`environment_report` — what every notebook prints first.
* :func:`choose_precision` — ``"auto"`` picks mixed precision where the hardware gains
  from it: ``mixed_bfloat16`` on NVIDIA GPUs of compute capability 8.0 and newer
  (A100, L4, H100: bfloat16 has float32's range, so no loss scaling is needed),
  ``mixed_float16`` on compute capability 7.x (T4, V100: tensor cores for float16
  only; Keras then scales the loss, because small float16 gradients would round to
  zero), ``mixed_bfloat16`` on TPUs and on CPUs with AMX (Intel's matrix units, which
  compute bfloat16), ``float32`` elsewhere. A CPU with AVX512-BF16 but no AMX keeps
  float32: there, measured, mixed bfloat16 trained 17% slower than float32
  (bench/README.md). The notebooks set the choice as Keras' global policy
  (``keras.mixed_precision.set_global_policy``) before they build the model, so the
  model's own policy is the mixed one and ``compile`` wraps the optimizer in a
  ``LossScaleOptimizer`` where float16 needs it.
* :func:`choose_strategy` — ``"auto"`` picks TPUStrategy on a TPU, MirroredStrategy
  when more than one GPU is visible, and the default (one device) otherwise.
  ``batch_size`` is always the *global* batch: with two GPUs and batch_size 64,
  each GPU gets 32 pictures per step.
* :func:`seed_everything` — Python's, NumPy's and TensorFlow's random numbers seeded,
  optionally with TensorFlow's deterministic ops.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

from .language import say
from .settings import check_params

GPU_HINT = (
    "No GPU found: training will be slow (on a 2-core CPU an epoch of all 50,000 "
    "pictures takes 5 to 17 minutes; see bench/README.md). On Colab: Runtime → "
    "Change runtime type → Hardware accelerator: GPU, then run the notebook again. "
    "Without a GPU, use small settings such as subset=500, epochs=2."
)
GPU_HINT_JA = (
    "GPU が見つかりません。学習に時間がかかります(2 コア CPU では、50,000 枚すべての画像の "
    "1 エポックに 5〜17 分かかります。bench/README.md を参照)。Colab では、メニューの"
    "「ランタイム」→「ランタイムのタイプを変更」でハードウェア アクセラレータに GPU を選び、"
    "ノートブックをもう一度実行してください。GPU がないときは、subset=500, epochs=2 のような"
    "小さな設定を使ってください。"
)
DRIVE_ROOT = "/content/drive"


def environment_report(show=True):
    """Python, TensorFlow, Keras and NumPy versions and the GPUs TensorFlow sees."""
    import keras
    import numpy
    import tensorflow as tf

    gpus = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    report = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "gpus": gpus,
        "device": describe_device(),
    }
    if show:
        print(
            f"Python {report['python']}  TensorFlow {report['tensorflow']}  "
            f"Keras {report['keras']}  NumPy {report['numpy']}"
        )
        print(
            say(en=f"GPU: {report['device']}", ja=f"GPU を使います: {report['device']}")
            if gpus
            else gpu_hint()
        )
    return report


def gpu_hint():
    """What the report says when there is no GPU: :data:`GPU_HINT` in the student's language."""
    return say(en=GPU_HINT, ja=GPU_HINT_JA)


def describe_device():
    """One line: the GPUs with their compute capability, the TPU, or the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
        return ", ".join(
            f"{d.get('device_name', 'GPU')} (compute capability "
            f"{'.'.join(map(str, d.get('compute_capability', ('?',))))})"
            for d in details
        )
    if _tpu_present():
        return "TPU"
    return f"CPU ({os.cpu_count()} cores{', bfloat16' if cpu_has_bfloat16() else ''})"


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU gains from bfloat16: it has AMX-BF16 (the ``amx_bf16`` flag).

    AVX512-BF16 alone is not enough: with oneDNN held to it (``ONEDNN_MAX_CPU_ISA=
    AVX512_CORE_BF16``) the article's model trained in mixed bfloat16 at 0.83x float32's
    speed, against 1.5x with AMX (bench/README.md, 2026-12-06).
    """
    try:
        flags = Path(cpuinfo).read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags


def pick_precision(gpu_capabilities, tpu, cpu_bfloat16):
    """The rule behind ``precision="auto"``, on plain facts (testable without the hardware).

    ``gpu_capabilities`` lists each GPU's compute capability as ``(major, minor)``;
    with several GPUs the oldest decides.
    """
    if gpu_capabilities:
        oldest = min(tuple(c) for c in gpu_capabilities)
        if oldest >= (8, 0):
            return "mixed_bfloat16"
        return "mixed_float16" if oldest >= (7, 0) else "float32"
    if tpu or cpu_bfloat16:
        return "mixed_bfloat16"
    return "float32"


def choose_precision(precision="auto"):
    """The Keras dtype policy name to use; ``"auto"`` looks at the hardware."""
    precision = check_params(precision=precision)["precision"]
    if precision != "auto":
        return precision
    import tensorflow as tf

    capabilities = [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return pick_precision(capabilities, _tpu_present(), cpu_has_bfloat16())


@contextlib.contextmanager
def precision_policy(policy):
    """Keras' global dtype policy set to ``policy`` inside the block, and put back after it.

    Layers take the global policy when they are built, so a model built inside the
    block keeps ``policy``; nothing outside the block is affected.
    """
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def pick_strategy_kind(tpu, gpu_count):
    """The rule behind ``strategy="auto"``."""
    if tpu:
        return "tpu"
    return "mirrored" if gpu_count > 1 else "default"


def choose_strategy(strategy="auto"):
    """A ``tf.distribute`` strategy; build and compile the model inside its ``scope()``."""
    strategy = check_params(strategy=strategy)["strategy"]
    import tensorflow as tf

    kind = strategy
    if strategy == "auto":
        kind = pick_strategy_kind(_tpu_present(), len(tf.config.list_physical_devices("GPU")))
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def accelerator_present():
    """True when TensorFlow sees a GPU or a TPU."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU")) or _tpu_present()


def _tpu_present():
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return True
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("TPU"))


def seed_everything(seed, deterministic=False):
    """Seed Python, NumPy and TensorFlow; ``deterministic`` also makes TensorFlow's ops repeatable.

    Deterministic ops can be slower, and once switched on they stay on for the session.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def mount_drive_if_needed(run_dir, name="run_dir"):
    """On Colab, mount Google Drive when ``run_dir`` lies on it, so runs survive a disconnect.

    ``name`` is the parameter that gave the folder (``run_dir`` or ``data_cache``), for the
    error outside Colab. Returns nothing, so that a notebook cell ending with it shows no value.
    """
    if not str(run_dir).startswith(DRIVE_ROOT):
        return
    try:
        from google.colab import drive  # only exists on Colab
    except ImportError:
        raise ValueError(
            say(
                en=f"{name} {str(run_dir)!r} is on Google Drive ({DRIVE_ROOT}), which only Colab can mount; "
                "use a local folder here",
                ja=f"{name} {str(run_dir)!r} は Google ドライブ({DRIVE_ROOT})上にありますが、Google "
                "ドライブをマウントできるのは Colab だけです。ここではローカルのフォルダを指定してください",
            )
        ) from None
    if not Path(DRIVE_ROOT, "MyDrive").exists():
        drive.mount(DRIVE_ROOT)
