"""Precision, strategy, determinism and the input pipeline."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import ENV, NARROW, epoch_of
from vggcifar import backends
from vggcifar.environment import (
    choose_precision,
    choose_strategy,
    cpu_has_bfloat16,
    mount_drive_if_needed,
    pick_precision,
    pick_strategy_kind,
    precision_policy,
)
from vggcifar.model import build_vgg16
from vggcifar.settings import check_params
from vggcifar.training import compile_like_article, make_pipeline

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


@pytest.mark.parametrize(
    "gpus, tpu, cpu_bf16, expected",
    [
        ([(7, 5)], False, False, "mixed_float16"),  # T4: tensor cores for float16 only
        ([(7, 0)], False, True, "mixed_float16"),  # V100
        ([(8, 0)], False, False, "mixed_bfloat16"),  # A100
        ([(8, 9)], False, False, "mixed_bfloat16"),  # L4
        ([(9, 0), (9, 0)], False, True, "mixed_bfloat16"),  # two H100s
        ([(9, 0), (7, 5)], False, False, "mixed_float16"),  # an H100 and a T4: the older decides
        ([(6, 0)], False, False, "float32"),  # P100: no tensor cores
        ([], True, False, "mixed_bfloat16"),  # TPU
        ([], False, True, "mixed_bfloat16"),  # CPU with AMX
        ([], False, False, "float32"),  # other CPUs
    ],
)
def test_auto_precision_rule(gpus, tpu, cpu_bf16, expected):
    assert pick_precision(gpus, tpu, cpu_bf16) == expected


def test_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_bfloat16(info)
    info.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_bfloat16(info)
    # AVX512-BF16 without AMX: mixed bfloat16 measured slower than float32 there
    info.write_text("flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert not cpu_has_bfloat16(info)
    assert not cpu_has_bfloat16(tmp_path / "missing")


def test_choose_precision_can_be_forced_and_checks_its_argument():
    assert choose_precision("float32") == "float32"
    assert choose_precision("auto") in ("float32", "mixed_bfloat16")  # no GPU here
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("float64")


@pytest.mark.parametrize(
    "policy, optimizer",
    [
        ("float32", keras.optimizers.Adam),
        ("mixed_bfloat16", keras.optimizers.Adam),
        ("mixed_float16", keras.optimizers.LossScaleOptimizer),
    ],
)
def test_the_global_policy_sets_the_models_and_float16_gets_loss_scaling(policy, optimizer):
    """The notebooks set Keras' global policy before building: the model's own policy is then
    the mixed one, and compile wraps the optimizer in loss scaling where float16 needs it."""
    keras.utils.set_random_seed(0)
    # float16's overflow below is the article's conv stack's (13 conv + 13 BatchNormalization);
    # the narrow VGG's gradients stay inside float16 at the first scale
    size = {"fc_units": 16} if policy == "mixed_float16" else NARROW
    with precision_policy(policy):
        model = compile_like_article(build_vgg16(**size))
    assert keras.mixed_precision.global_policy().name == "float32"  # put back after the block
    assert model.dtype_policy.name == policy
    assert isinstance(model.optimizer, optimizer)  # on PyTorch, a subclass of it
    if optimizer is keras.optimizers.LossScaleOptimizer:
        assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.Adam)
    assert model.get_layer("block1_conv1").compute_dtype == policy.removeprefix("mixed_")
    assert model.get_layer("predictions").compute_dtype == "float32"  # the softmax stays float32
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype="float32")
    y = keras.utils.to_categorical(np.arange(4) % 10, 10)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if optimizer is keras.optimizers.LossScaleOptimizer:
        # the scaled gradients overflowed float16: the steps were skipped and the scale lowered
        assert float(model.optimizer.dynamic_scale) < 2.0**15
        assert int(model.optimizer.iterations) + int(model.optimizer.step_counter) <= 2
    else:
        assert int(model.optimizer.iterations) == 2


def test_mixed_precision_model_keeps_a_float32_output():
    with precision_policy("mixed_bfloat16"):
        model = build_vgg16(**NARROW)
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("block1_conv1").variable_dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    probabilities = model.predict(np.random.rand(2, 32, 32, 3).astype("float32"), verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "tpu, gpus, expected",
    [
        (True, 0, "tpu"),
        (False, 2, "mirrored"),
        (False, 8, "mirrored"),
        (False, 1, "default"),
        (False, 0, "default"),
    ],
)
def test_auto_strategy_rule(tpu, gpus, expected):
    assert pick_strategy_kind(tpu, gpus) == expected


def test_bad_strategy_and_precision_parameters():
    with pytest.raises(ValueError, match="strategy must be one of"):
        check_params(strategy="horovod")
    with pytest.raises(ValueError, match="precision must be one of"):
        check_params(precision="half")
    with pytest.raises(ValueError, match="deterministic must be True or False"):
        check_params(deterministic="yes")
    with pytest.raises(ValueError, match="strategy must be one of"):
        choose_strategy("horovod")


def test_pipeline_keeps_uint8_until_the_batch_and_shuffles_each_epoch():
    x = np.arange(20, dtype="uint8").reshape(20, 1, 1, 1) * 10
    y = np.arange(20) % 4
    pipeline = make_pipeline(x, y, 4, batch_size=8, shuffle=True, seed=3)
    first, second = epoch_of(pipeline), epoch_of(pipeline)
    assert [len(bx) for bx, _ in first] == [8, 8, 4]
    bx, by = first[0]
    assert bx.dtype == np.float32 and by.shape == (8, 4)
    np.testing.assert_allclose(bx.reshape(-1) * 255 / 10 % 4, by.argmax(1))  # pairs kept
    order = lambda batches: np.concatenate([b.reshape(-1) for b, _ in batches])  # noqa: E731
    np.testing.assert_allclose(sorted(order(first)), sorted(x.reshape(-1) / 255), rtol=1e-6)
    assert not np.array_equal(order(first), order(second))  # a new order every epoch
    again = [bx for bx, _ in epoch_of(make_pipeline(x, y, 4, 8, shuffle=True, seed=3))]
    assert np.array_equal(np.concatenate(again).reshape(-1), order(first))  # seeded


def test_drive_is_mounted_only_for_drive_paths(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # any import of it would fail
    assert mount_drive_if_needed("runs/article") is None  # nothing asked, nothing shown in a cell
    with pytest.raises(ValueError, match="only Colab can mount"):
        mount_drive_if_needed("/content/drive/MyDrive/vggcifar/run")


#: In a child Python, after its imports: run_training builds the NARROW VGG (as conftest's narrow_vgg).
NARROW_IN_CHILD = (
    "import functools, vggcifar.model, vggcifar.training; vggcifar.training.build_vgg16 = "
    f"functools.partial(vggcifar.model.build_vgg16, **{NARROW!r})"
)


def run_python(code, timeout=600):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow  # two runs in a fresh Python with TensorFlow's deterministic ops
def test_deterministic_runs_give_identical_histories(tmp_path):
    out = run_python(f"""
        import json
        from vggcifar.training import run_training
        {NARROW_IN_CHILD}
        histories = []
        for name in ("a", "b"):
            _, _, history = run_training(data="synthetic", subset=4, epochs=2, batch_size=16,
                                         seed=7, precision="float32", deterministic=True,
                                         run_dir=r"{tmp_path}/" + name)
            histories.append({{k: v for k, v in history.items() if k != "seconds"}})
        print("HISTORIES", json.dumps(histories))
    """)
    a, b = json.loads(out.split("HISTORIES ")[1])
    assert a == b and a["epoch"] == [1, 2]


@pytest.mark.slow  # a fresh Python with two logical CPUs
@pytest.mark.skipif(
    not backends.on_tensorflow(), reason="TensorFlow's MirroredStrategy (JAX: test_backends.py)"
)
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    out = run_python(f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from vggcifar import runs
        from vggcifar.training import run_training
        {NARROW_IN_CHILD}
        _, _, history = run_training(data="synthetic", subset=4, epochs=2, batch_size=16,
                                     precision="float32", strategy="mirrored",
                                     run_dir=r"{tmp_path}/mirrored")
        print("ENV", json.dumps(runs.read_json(r"{tmp_path}/mirrored/environment.json")))
        print("EPOCHS", history["epoch"])
    """)
    env = json.loads(out.split("ENV ")[1].splitlines()[0])
    assert env["strategy"] == "MirroredStrategy" and env["replicas"] == 2
    assert "EPOCHS [1, 2]" in out
    assert "3/3 - " in out  # 40 pictures in steps of 16: batch_size is the global batch
