"""The machine: versions, GPU check, and the fastest settings Keras offers on it.

* :func:`environment_report` — what every notebook prints first.
* :func:`choose_precision` — ``"auto"`` picks mixed precision where the hardware gains
  from it: ``mixed_bfloat16`` on NVIDIA GPUs of compute capability 8.0 and newer
  (A100, L4, H100: bfloat16 has float32's range, so no loss scaling is needed),
  ``mixed_float16`` on compute capability 7.x (T4, V100: tensor cores for float16
  only; Keras then scales the loss, because small float16 gradients would round to
  zero), ``mixed_bfloat16`` on TPUs and, with TensorFlow, on CPUs with AMX (Intel's
  matrix units, which compute bfloat16), ``float32`` elsewhere. A CPU with AVX512-BF16 but no AMX keeps
  float32: there, measured, mixed bfloat16 trained 17% slower than float32
  (bench/README.md). The notebooks set the choice as Keras' global policy
  (``keras.mixed_precision.set_global_policy``) before they build the model, so the
  model's own policy is the mixed one and ``compile`` wraps the optimizer in a
  ``LossScaleOptimizer`` where float16 needs it.
* :func:`choose_strategy` — ``"auto"`` spreads each batch over the devices on a TPU
  or when more than one GPU is visible, and uses one device otherwise: TensorFlow's
  TPUStrategy or MirroredStrategy, JAX's ``keras.distribution.DataParallel``
  (:mod:`vggcifar.backends`). ``batch_size`` is always the *global* batch: with two
  GPUs and batch_size 64, each GPU gets 32 pictures per step.
* :func:`seed_everything` — Python's, NumPy's and the backend's random numbers seeded,
  optionally with deterministic ops.

Every function asks the Keras backend in use (TensorFlow, JAX or PyTorch), so they
answer the same way on Colab's GPU runtime (TensorFlow) and its TPU runtime (JAX).
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

from . import backends
from .language import say
from .settings import ParameterError, check_params

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
    """Python, the framework under Keras (TensorFlow, JAX or PyTorch), Keras, NumPy and the accelerators."""
    import keras
    import numpy

    label, version = backends.framework()
    found = backends.accelerators()
    report = {
        "python": platform.python_version(),
        "backend": backends.backend(),
        backends.backend(): version,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "gpus": [name for name, _ in found.gpus],
        "device": describe_device(found),
    }
    if show:
        print(
            f"Python {report['python']}  {label} {version}  Keras {report['keras']}  NumPy {report['numpy']}"
        )
        if found.gpus:
            print(say(en=f"GPU: {report['device']}", ja=f"GPU を使います: {report['device']}"))
        elif found.tpu_cores:
            print(say(en=f"TPU: {report['device']}", ja=f"TPU を使います: {report['device']}"))
        else:
            print(gpu_hint())
    return report


def gpu_hint():
    """What the report says when there is no GPU: :data:`GPU_HINT` in the student's language."""
    return say(en=GPU_HINT, ja=GPU_HINT_JA)


def describe_device(found=None):
    """One line: the GPUs with their compute capability, the TPU, or the CPU."""
    found = backends.accelerators() if found is None else found
    if found.gpus:
        return ", ".join(
            f"{name} (compute capability {'.'.join(map(str, capability))})" for name, capability in found.gpus
        )
    if found.tpu_cores:
        cores = f"{found.tpu_cores} core{'s' if found.tpu_cores > 1 else ''}"
        return f"TPU ({cores}, Keras on {backends.framework()[0]})"
    bfloat16 = ", bfloat16" if cpu_has_bfloat16() and backends.on_tensorflow() else ""
    return f"CPU ({os.cpu_count()} cores{bfloat16})"


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
    found = backends.accelerators()
    # AMX's gain was measured through oneDNN, TensorFlow's CPU kernels; on JAX's and
    # PyTorch's CPU code it is not, so there the CPU keeps float32.
    cpu_bfloat16 = backends.on_tensorflow() and cpu_has_bfloat16()
    return pick_precision([capability for _, capability in found.gpus], found.tpu_cores > 0, cpu_bfloat16)


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
    """The strategy to build and compile the model in (its ``scope()``); see :mod:`vggcifar.backends`."""
    strategy = check_params(strategy=strategy)["strategy"]
    kind = strategy
    if strategy == "auto":
        found = backends.accelerators()
        kind = pick_strategy_kind(found.tpu_cores > 0, len(found.gpus))
    if kind != "default" and backends.backend() == "torch":
        raise ParameterError(
            say(
                en=f"strategy={strategy!r} needs TensorFlow or JAX: Keras trains on one device with PyTorch; "
                "use 'default' or 'auto'",
                ja=f"strategy={strategy!r} には TensorFlow か JAX が必要です。PyTorch では Keras は 1 台の"
                "デバイスで学習します。'default' か 'auto' を指定してください",
            )
        )
    return backends.make_strategy(kind)


def accelerator_present():
    """True when the Keras backend sees a GPU or a TPU."""
    found = backends.accelerators()
    return bool(found.gpus or found.tpu_cores)


def seed_everything(seed, deterministic=False):
    """Seed Python, NumPy and the backend; ``deterministic`` also makes its ops repeatable.

    Deterministic ops can be slower, and once switched on they stay on for the session.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        backends.make_ops_deterministic()


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
