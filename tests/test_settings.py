"""One home for every default and check, and a package without import circles."""

import ast

import pytest

from conftest import REPO
from vggcifar import settings
from vggcifar.settings import (
    ARTICLE,
    ARTICLE_RECIPE,
    TRAINING,
    ParameterError,
    check_params,
    check_recipe,
    run_params,
)

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def test_the_articles_settings():
    assert ARTICLE == {
        "data": "cifar10",
        "subset": None,
        "seed": 0,
        "epochs": 20,
        "batch_size": 64,
        "run_dir": "runs/article",
    }
    assert ARTICLE_RECIPE["optimizer"] == "adam" and ARTICLE_RECIPE["learning_rate"] == 0.001


def test_run_params_records_every_setting_but_how_to_run():
    params = run_params()
    assert set(params) == (set(ARTICLE) | set(TRAINING) | set(ARTICLE_RECIPE)) - {"speedups"}
    assert "overwrite" not in params


@pytest.mark.parametrize(
    "params, message",
    [
        ({"precision": True}, "precision must be one of"),
        ({"speedups": 1}, r"speedups must be one of \('auto', True, False\), got 1"),
        ({"speedups": "true"}, "speedups must be one of"),
        ({"overwrite": "yes"}, "overwrite must be True or False"),
        ({"validation": "train"}, r"validation must be one of \('test', 'holdout'\)"),
        ({"run_dir": ""}, "run_dir must be a folder path"),
        ({"batch_size": True}, "batch_size must be a whole number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a number"),
        ({"batchsize": 64}, r"unknown parameter\(s\) \['batchsize'\]; known: .*'batch_size'"),
    ],
)
def test_each_bad_value_is_named_with_what_is_allowed(params, message):
    with pytest.raises(ParameterError, match=message):
        check_params(**params)


def test_values_come_back_as_plain_python():
    import numpy as np

    checked = check_params(
        epochs=np.int16(4), dropout=np.float64(0.25), speedups=True, data=settings.Path("synthetic")
    )
    assert checked == {"epochs": 4, "dropout": 0.25, "speedups": True, "data": "synthetic"}
    assert type(checked["epochs"]) is int
    assert check_recipe({"cutout": np.int64(8)})["cutout"] == 8


def package_imports():
    """{module: set of vggcifar modules it imports}, read from the source."""
    graph = {}
    for path in sorted((REPO / "vggcifar").glob("*.py")):
        name = path.stem
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module.split(".")[0])
                else:
                    imported |= {alias.name for alias in node.names}
        graph[name] = imported - {name}
    return graph


def test_no_import_circles_and_settings_at_the_bottom():
    graph = package_imports()
    assert graph["language"] == set()  # the messages' language, under everything
    assert graph["backends"] == set()  # which Keras backend: under everything too
    # settings asks backends only inside check_batch_size (how many devices share a batch)
    assert graph["settings"] == {"language", "backends"} and graph["files"] == {"language"}
    assert "speed" not in graph["model"] and "training" not in graph["runs"]

    def visit(module, path):
        assert module not in path, f"import circle: {' -> '.join(path + [module])}"
        for imported in graph.get(module, ()):
            visit(imported, path + [module])

    for module in graph:
        visit(module, [])
