"""Notebooks 04 and 05 hold the article's plotting and saving steps as explicit calls (issue 23).

The cells are read by their syntax (``ast``), as ``../shared/tools/article_steps.py`` reads
them: a call counts with its literal arguments, whatever the spaces, line breaks or comments
around it; a call in a markdown cell, a string or a comment does not count.
"""

import ast
import json

import pytest

from conftest import NOTEBOOKS

GOAL = 0.9  # the share of the article's steps a notebook must hold


def cells_tree(path):
    """All code cells of a notebook as one module (the cells are plain Python, no magics)."""
    body = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            body += ast.parse("".join(cell["source"])).body
    return ast.Module(body=body, type_ignores=[])


def calls(tree, name):
    """The calls of ``name`` (``f(...)`` or ``something.f(...)``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == name:
                found.append(node)
    return found


def literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None


def argument(call, position, keyword):
    for item in call.keywords:
        if item.arg == keyword:
            return literal(item.value)
    return literal(call.args[position]) if len(call.args) > position else None


def plotted(call):
    """The keys of ``history.history[...]`` among a plt.plot call's arguments, with the call's color."""
    keys = set()
    for node in call.args:
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "history"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "history"
        ):
            keys.add(literal(node.slice))
    return keys, argument(call, 99, "color")


def steps_04(tree):
    curves = [plotted(c) for c in calls(tree, "plot")]

    def curve(key, color):
        return any(key in keys and found == color for keys, found in curves)

    legends = [argument(c, 0, "handles") for c in calls(tree, "legend")]
    return {
        "two plt.figure(...)": len(calls(tree, "figure")) >= 2,
        "plt.plot(history.history['accuracy'], color='b')": curve("accuracy", "b"),
        "plt.plot(history.history['val_accuracy'], color='r')": curve("val_accuracy", "r"),
        "plt.plot(history.history['loss'], color='b')": curve("loss", "b"),
        "plt.plot(history.history['val_loss'], color='r')": curve("val_loss", "r"),
        "plt.xlabel('epoch')": any(argument(c, 0, "xlabel") == "epoch" for c in calls(tree, "xlabel")),
        "plt.ylabel('accuracy') and plt.ylabel('loss')": {"accuracy", "loss"}
        <= {argument(c, 0, "ylabel") for c in calls(tree, "ylabel")},
        "plt.legend(['training', 'test'])": any(list(h or []) == ["training", "test"] for h in legends),
        "plt.show()": bool(calls(tree, "show")),
        "plt.savefig(...) twice": len(calls(tree, "savefig")) >= 2,
    }


def steps_05(tree):
    def named(name, suffix):
        return {argument(c, 0, "filepath") for c in calls(tree, name)} >= {f"cifar10-CNN{suffix}"}

    return {
        "model.save('cifar10-CNN.keras')": named("save", ".keras"),
        "model.save('cifar10-CNN.h5')": named("save", ".h5"),
        "model.save_weights('cifar10-CNN.weights.h5')": named("save_weights", ".weights.h5"),
        "keras.models.load_model('cifar10-CNN.keras')": named("load_model", ".keras"),
        "keras.models.load_model('cifar10-CNN.h5')": named("load_model", ".h5"),
        "model.load_weights('cifar10-CNN.weights.h5')": named("load_weights", ".weights.h5"),
        "os.path.getsize(...)": bool(calls(tree, "getsize")),
    }


STEPS = {"04_plots": steps_04, "05_saving": steps_05}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_the_articles_steps_are_explicit_calls_in_the_cells(name):
    found = STEPS[name](cells_tree(NOTEBOOKS / f"{name}.ipynb"))
    missing = [step for step, present in found.items() if not present]
    assert len(found) - len(missing) >= GOAL * len(found), f"{name} does not show {missing}"
    assert not missing, f"{name} does not show {missing}"  # today every one is there: keep it so


@pytest.mark.parametrize("name", sorted(STEPS))
def test_text_that_only_looks_like_the_calls_does_not_count(name, tmp_path):
    """The same notebook with its code cells turned into markdown holds none of the steps."""
    notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["cell_type"] = "markdown"
            for key in ("outputs", "execution_count"):
                cell.pop(key, None)
    (tmp_path / "changed.ipynb").write_text(json.dumps(notebook))
    assert not any(STEPS[name](cells_tree(tmp_path / "changed.ipynb")).values())
