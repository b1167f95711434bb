"""The article's steps are in the cells of 01_data and 02_model as explicit Keras calls (issue 23).

A student reads the notebooks beside the article and should put a finger on each of its steps.
The cells are read by their syntax (Python's ``ast``), not their text: any spelling of a call
counts (positional or keyword arguments, either quotes, line breaks), while a loop whose layer
names are computed (``f"bn{n}"``) does not, since the student could not find the step there.
Every step must be there (the project's goal is at least 90% of the article's steps; 01 and 02
hold all of them, and a missing layer is a mistake, not a trade-off).
"""

import ast
import copy
import json

import pytest

from conftest import NOTEBOOKS

#: The article's network, in its order: (block, convolutions, filters).
BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]
#: Keyword arguments of notebook 06's improvements: they belong to the loop version, never the listing.
IMPROVEMENTS = {"kernel_regularizer", "momentum", "rate"}


def code_tree(notebook):
    """All code cells of a notebook (a dict, as json.load gives it) as one module; magics left out."""
    body = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        body += ast.parse("\n".join(lines)).body
    return ast.Module(body=body, type_ignores=[])


def read(name):
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())


def called(call):
    """The name a call is made by: ``Conv2D`` for ``layers.Conv2D(...)`` and ``Conv2D(...)``."""
    function = call.func
    return function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")


def calls(tree, name):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and called(node) == name]


def argument(call, position, keyword):
    """The literal value of an argument, given by position or by keyword; None when absent or computed."""
    for given in call.keywords:
        if given.arg == keyword:
            node = given.value
            break
    else:
        node = call.args[position] if position is not None and len(call.args) > position else None
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def named(tree, kind):
    """``{literal name: call}`` of the calls to ``kind``."""
    return {argument(call, None, "name"): call for call in calls(tree, kind)}


def steps_01(tree):
    """``{step: found}`` for the article's data step."""
    unpacked = False
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and called(node.value) == "load_data"
        ):
            for target in node.targets:
                if isinstance(target, ast.Tuple) and all(isinstance(pair, ast.Tuple) for pair in target.elts):
                    names = [[getattr(x, "id", "") for x in pair.elts] for pair in target.elts]
                    unpacked |= names == [["x_train", "y_train"], ["x_test", "y_test"]]
    found = {"(x_train, y_train), (x_test, y_test) = load_data(...)": unpacked}
    for y in ("y_train", "y_test"):
        found[f"{y} = keras.utils.to_categorical({y}, num_classes)"] = any(
            call.args and getattr(call.args[0], "id", "") == y and len(call.args) + len(call.keywords) == 2
            for call in calls(tree, "to_categorical")
        )
    printed = {
        ast.unparse(argument_node)
        for call in calls(tree, "print")
        for argument_node in call.args
        if isinstance(argument_node, ast.Attribute) and argument_node.attr == "shape"
    }
    for x in ("x_train", "y_train", "x_test", "y_test"):
        found[f"print(..., {x}.shape)"] = f"{x}.shape" in printed
    return found


def listing(tree):
    """The items of the list given to ``keras.Sequential([...])``, or []."""
    for call in calls(tree, "Sequential"):
        if call.args and isinstance(call.args[0], ast.List):
            return [item for item in call.args[0].elts if isinstance(item, ast.Call)]
    return []


def steps_02(tree):
    """``{step: found}`` for the article's model step: the listing, layer by layer, in order."""
    items = listing(tree)
    found = {"keras.Sequential([...])": bool(items)}
    found["keras.Input(shape=...) first"] = bool(items) and called(items[0]) == "Input"
    layers = {argument(item, None, "name"): item for item in items}
    order, bn = [], 0
    for block, convolutions, filters in BLOCKS:
        for i in range(1, convolutions + 1):
            bn += 1
            conv = layers.get(f"block{block}_conv{i}")
            found[f"Conv2D({filters}, 3x3, stride 1, 'same', name='block{block}_conv{i}')"] = (
                conv is not None
                and called(conv) == "Conv2D"
                and argument(conv, 0, "filters") == filters
                and argument(conv, 1, "kernel_size") in (3, (3, 3), [3, 3])
                and argument(conv, 2, "strides") in (None, 1, (1, 1), [1, 1])
                and argument(conv, None, "padding") == "same"
            )
            norm = layers.get(f"bn{bn}")
            found[f"BatchNormalization(name='bn{bn}')"] = (
                norm is not None and called(norm) == "BatchNormalization"
            )
            order += [f"block{block}_conv{i}", f"bn{bn}"]
        pool = layers.get(f"block{block}_pool")
        found[f"MaxPooling2D(2x2, stride 2, name='block{block}_pool')"] = (
            pool is not None
            and called(pool) == "MaxPooling2D"
            and argument(pool, 0, "pool_size") in (None, 2, (2, 2), [2, 2])
            and argument(pool, 1, "strides") in (None, 2, (2, 2), [2, 2])
        )
        order.append(f"block{block}_pool")
    relus = [
        item for item in items if called(item) == "Activation" and argument(item, 0, "activation") == "relu"
    ]
    found["13 x Activation('relu'), each after its BatchNormalization"] = len(relus) == 13 and all(
        called(items[items.index(relu) - 1]) == "BatchNormalization" for relu in relus
    )
    flatten = layers.get("flatten")
    found["Flatten(name='flatten')"] = flatten is not None and called(flatten) == "Flatten"
    for name in ("fc1", "fc2"):
        dense = layers.get(name)
        found[f"Dense(4096, activation='relu', name='{name}')"] = (
            dense is not None
            and called(dense) == "Dense"
            and argument(dense, 0, "units") == 4096
            and argument(dense, 1, "activation") == "relu"
        )
    out = layers.get("predictions")
    found["Dense(num_classes, activation='softmax', name='predictions')"] = (
        out is not None and called(out) == "Dense" and argument(out, 1, "activation") == "softmax"
    )
    order += ["flatten", "fc1", "fc2", "predictions"]
    listed = [name for name in layers if name in order]
    found["the layers in the article's order"] = listed == order
    found["no option of notebook 06 in the listing"] = not any(
        given.arg in IMPROVEMENTS for item in items for given in item.keywords
    ) and not any(called(item) == "Dropout" for item in items)
    found["model.summary()"] = bool(calls(tree, "summary"))
    return found


def missing(found):
    return [step for step, there in found.items() if not there]


def test_01_data_holds_the_articles_data_steps():
    found = steps_01(code_tree(read("01_data")))
    assert not missing(found), f"01_data lacks {missing(found)}"


def test_02_model_lists_the_articles_model_layer_by_layer():
    found = steps_02(code_tree(read("02_model")))
    assert len(found) >= 38
    assert not missing(found), f"02_model lacks {missing(found)}"


def test_02_model_builds_the_loop_version_after_the_listing():
    """The loop (vgg_block, build_vgg16) comes second, and a cell compares it with the listing."""
    cells = [c for c in read("02_model")["cells"] if c["cell_type"] == "code"]
    where = {}
    for number, cell in enumerate(cells):
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                where.setdefault(f"def {node.name}", number)
            if isinstance(node, ast.Call):
                where.setdefault(called(node), number)
    assert where["Sequential"] < where["def vgg_block"] < where["def build_vgg16"]
    assert where["build_vgg16"] > where["def build_vgg16"]  # the check cell calls it


def without(notebook, layer_name):
    """A copy of a notebook without the layer ``layer_name``: its line ``layers.<kind>(...)`` is gone."""
    changed = copy.deepcopy(notebook)
    for cell in changed["cells"]:
        if cell["cell_type"] == "code":
            cell["source"] = [
                line
                for line in cell["source"]
                if not (line.lstrip().startswith("layers.") and f'name="{layer_name}"' in line)
            ]
    assert changed != notebook, f"no line makes the layer {layer_name}"
    return changed


@pytest.mark.parametrize("layer_name", ["block3_conv2", "bn13", "block5_pool", "fc2"])
def test_a_layer_missing_from_the_listing_is_found(layer_name):
    found = steps_02(code_tree(without(read("02_model"), layer_name)))
    assert missing(found), f"removing {layer_name} went unnoticed"
    assert any(f"'{layer_name}'" in step for step in missing(found)), missing(found)


def test_the_data_steps_read_the_syntax_not_the_text():
    notebook = read("01_data")
    found = steps_01(code_tree(notebook))
    changed = copy.deepcopy(notebook)
    for cell in changed["cells"]:  # the same words in a comment only
        if cell["cell_type"] == "code":
            text = "".join(cell["source"]).replace("to_categorical(y_test", "to_categorical(y_test_")
            cell["source"] = [text + "\n# y_test = keras.utils.to_categorical(y_test, num_classes)"]
    assert found["y_test = keras.utils.to_categorical(y_test, num_classes)"]
    assert missing(steps_01(code_tree(changed))) == [
        "y_test = keras.utils.to_categorical(y_test, num_classes)"
    ]
