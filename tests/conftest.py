import ast
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the logs

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SHARED_CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"


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
