"""The code the notebooks show and the code the package keeps are the same (d2l's #@save mark)."""

import importlib.util
import json
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location("saved_code", REPO / "tools" / "saved_code.py")
saved_code = sys.modules["saved_code"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(saved_code)


def test_marked_definitions_are_the_packages_letter_for_letter():
    definitions = saved_code.all_definitions()
    marked = {(d.notebook, d.name, d.module) for d in definitions}
    assert marked >= {
        ("02_model.ipynb", "VGG16_BLOCKS", "vggcifar.model"),
        ("02_model.ipynb", "vgg_block", "vggcifar.model"),
        ("02_model.ipynb", "build_vgg16", "vggcifar.model"),
        ("03_training.ipynb", "compile_like_article", "vggcifar.training"),
        ("04_plots.ipynb", "plot_metric", "vggcifar.plots"),
        ("05_saving.ipynb", "save_article_files", "vggcifar.saving"),
    }
    different = saved_code.differences(definitions)
    assert not different, [f"{d.notebook}: {d.name} differs from {d.module}" for d, _ in different]


def test_a_changed_notebook_definition_is_caught(tmp_path):
    notebook = json.loads((REPO / "notebooks" / "en" / "02_model.ipynb").read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["source"] = "".join(cell["source"]).replace(
                "BatchNormalization(momentum=bn_momentum", "BatchNormalization(momentum=0.9"
            )
    changed = tmp_path / "02_model.ipynb"
    changed.write_text(json.dumps(notebook))
    different = saved_code.differences(saved_code.marked_definitions(changed))
    assert [d.name for d, _ in different] == ["vgg_block"]
