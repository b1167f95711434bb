import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the logs

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: The English notebooks, which the tests run (notebooks/ja/ has the same code cells).
NOTEBOOKS = REPO / "notebooks" / "en"
#: The bilingual source both sets are written from (tools/make_language_notebooks.py).
SOURCE = REPO / "notebooks" / "source"
SHARED_CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"
#: The environment of every kernel and child Python the tests start.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
#: Small settings for the notebooks' runs in CI: generated pictures, 10 per class, one epoch.
SMALL = {"data": "synthetic", "subset": 10, "seed": 0, "epochs": 1, "batch_size": 32}
#: A narrow VGG16 of the article's kind (five blocks of convolution, BatchNormalization,
#: ReLU and pooling, then the dense layers), a few KB: for every test that is not about the
#: article's sizes. Tracing the article's 13 convolutions and 13 BatchNormalizations costs
#: about 8 CPU-s per first fit; this one about 3 (tests/test_model.py keeps the article's
#: counts and shapes, tests/test_saving.py its file sizes).
NARROW = {"blocks": ((1, 8),) * 5, "fc_units": 16}


#: Test modules that import TensorFlow itself (the speed-ups are TensorFlow's kernels): not
#: collected where it is missing, as in .venv-jax (the backend tier).
collect_ignore = [] if importlib.util.find_spec("tensorflow") else ["test_speed.py"]


def parameters_of(notebook):
    """The values of the one cell tagged ``parameters``; fails unless every line is ``name = literal``."""
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell is tagged 'parameters'"
    values = {}
    for statement in ast.parse(cells[0].source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1
        values[statement.targets[0].id] = ast.literal_eval(statement.value)  # literals only
    return values


@pytest.fixture
def shared_cifar_archive():
    """The real CIFAR-10 training pictures (JPEG) that development machines and CI have."""
    if not SHARED_CIFAR.exists():
        pytest.skip(
            f"real CIFAR-10 pictures not found at {SHARED_CIFAR} "
            "(only development machines and CI have ../shared/datasets/)"
        )
    return SHARED_CIFAR


def write_image_folder(root, layout, size=(32, 32), suffix=".png", seed=0):
    """Write ``{split: {class: count}}`` as ``root/<split>/<class>/<n><suffix>``.

    Every picture of class k is a flat colour k*20 plus a little noise, so classes differ.
    """
    rng = np.random.default_rng(seed)
    for split, classes in layout.items():
        for k, (class_name, count) in enumerate(sorted(classes.items())):
            folder = Path(root) / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                pixels = np.clip(k * 20 + rng.integers(0, 10, (*size, 3)), 0, 255).astype("uint8")
                Image.fromarray(pixels).save(folder / f"{n:04d}{suffix}")
    return Path(root)


MEMORY_LIMITED = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
out = {}
try:
    exec(sys.argv[2])
    out["result"] = "read"
except BaseException as error:  # MemoryError included: the test says which one it got
    out["error"], out["message"] = type(error).__name__, str(error)
# the high-water mark of this program's memory (ru_maxrss would also count pytest's, from before exec)
status = open("/proc/self/status").read()
out["peak_rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
print("RESULT", json.dumps(out))
"""


def epoch_of(pipeline):
    """One epoch of ``make_pipeline``'s batches as NumPy pairs, whichever feeder made them."""
    if isinstance(pipeline, keras.utils.PyDataset):
        batches = [pipeline[i] for i in range(len(pipeline))]
        pipeline.on_epoch_end()  # what fit does after each epoch
        return batches
    return [(np.asarray(x), np.asarray(y)) for x, y in pipeline]


def run_memory_limited(code, *args, limit=2**30, timeout=300):
    """Run ``code`` (with ``args`` as ``sys.argv[3:]``) in a fresh Python whose address space is
    capped at ``limit`` bytes; ``{"error", "message", "peak_rss_mb"}`` or ``{"result": "read", ...}``,
    where ``peak_rss_mb`` is the child's peak resident memory (VmHWM), the interpreter included.

    Linux only (RLIMIT_AS bounds the address space there; macOS ignores it), so the test skips
    elsewhere. A reader that would allocate past the cap gets MemoryError, reported as such.
    """
    import json
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS caps a process's memory on Linux only; elsewhere it is not enforced")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_LIMITED, str(limit), code, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0 and "RESULT " in result.stdout, result.stderr[-3000:]
    return json.loads(result.stdout.split("RESULT ", 1)[1])


@pytest.fixture
def narrow_vgg(monkeypatch):
    """``run_training`` (and ``ensure_finished_run`` through it) builds the :data:`NARROW` VGG.

    The package's own functions run unchanged; only the model they build is narrower.
    """
    import functools

    from vggcifar.model import build_vgg16

    monkeypatch.setattr("vggcifar.training.build_vgg16", functools.partial(build_vgg16, **NARROW))
    return NARROW


#: The run that ``trained_run`` makes, as notebook 03 records its parameters.
TRAINED_RUN_PARAMS = {"data": "synthetic", "subset": 20, "epochs": 2, "batch_size": 32}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Two epochs of the :data:`NARROW` VGG on 200 synthetic pictures, with notebook 03's cells
    (compile like the article, the run folder as a callback, ``model.fit``); shared, read only.

    Returns ``(run_dir, model, dataset, run, history)``.
    """
    import keras

    from vggcifar.data import make_synthetic
    from vggcifar.model import build_vgg16
    from vggcifar.runs import RunFolder
    from vggcifar.training import compile_like_article, pixels_to_float

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    keras.utils.set_random_seed(0)
    dataset = make_synthetic(per_class=20, test_per_class=5, seed=0)
    model = compile_like_article(build_vgg16(**NARROW))
    run = RunFolder(run_dir, TRAINED_RUN_PARAMS)
    initial_epoch = run.resume(model)
    history = model.fit(
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        batch_size=32,
        epochs=2,
        validation_data=(pixels_to_float(dataset.x_test), keras.utils.to_categorical(dataset.y_test, 10)),
        initial_epoch=initial_epoch,
        callbacks=[run],
        verbose=0,
    )
    return run_dir, model, dataset, run, history


KERAS_ALONE = textwrap.dedent("""
    import json, sys
    sys.modules["vggcifar"] = None  # any attempt to import the package fails
    try:
        import vggcifar  # noqa: F401
        raise SystemExit("vggcifar could be imported")
    except ImportError:
        pass
    import keras
    import numpy as np

    paths, pictures = json.loads(sys.argv[1]), np.load(sys.argv[2])
    out = {}
    for name, path in paths.items():
        if path.endswith(".weights.h5"):  # weights need an architecture: the .keras file's, rebuilt
            model = keras.models.model_from_json(keras.models.load_model(paths["article_keras"]).to_json())
            model.load_weights(path)
        else:
            model = keras.models.load_model(path)
            optimizer = getattr(model, "optimizer", None)  # None: saved without one
            optimizer = getattr(optimizer, "inner_optimizer", optimizer)
            out[name + "_optimizer"] = type(optimizer).__name__ if optimizer is not None else None
        out[name] = model.predict(pictures, verbose=0).tolist()
    out["backend"] = keras.backend.backend()
    print("RESULT", json.dumps(out))
""")


def load_with_keras_alone(paths, pictures, folder, python=sys.executable, backend=None):
    """Load each saved file in a Python where vggcifar cannot be imported; its predictions.

    ``python`` and ``backend`` (``KERAS_BACKEND``) load them in another environment:
    on another Keras backend (tests/test_backends.py).
    """
    np.save(folder / "pictures.npy", pictures)
    env = ENV if backend is None else {**ENV, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [
            python,
            "-c",
            KERAS_ALONE,
            json.dumps({k: str(v) for k, v in paths.items()}),
            str(folder / "pictures.npy"),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.split("RESULT ")[1])
