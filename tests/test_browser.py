"""00_article as a student sees it: opened in JupyterLab in a real headless browser and run there.

For each language, a copy of ``notebooks/<language>/00_article.ipynb`` gets the small parameters
(the shipped sample, 10 pictures per class, two epochs) from papermill's ``parameterize_notebook``,
which writes them into the notebook without running it. JupyterLab serves the copy; Debian's
Chromium, driven by Selenium through chromedriver, opens it, runs every cell with JupyterLab's own
"Run All Cells" command and waits until every prompt is numbered. Then what the page shows is
checked: every code cell ran (a number in its prompt, none left at ``[*]``), no cell shows an error,
the figures are pictures the browser decoded (as many per cell as the plotting cells draw, with
this run's curves in them), the tables are there (the model summary with all its layers, the
parameter counts, the result of ``fit``, the saved files), and every markdown cell is rendered, its
headings in the notebook's language, no link left as ``[title][name]`` text. The notebook, saved by
JupyterLab, is read back to count the same outputs a second way.

Screenshots of what the student sees (the notebook as opened, the setup's report, the pictures,
the model summary, ``fit`` and its result, the curves, the saved files, the end) go to the folder that
``VGGCIFAR_SCREENSHOTS`` names, or to a pytest temporary folder; ``report-<language>.json`` beside
them holds the counts and the time.

Needs JupyterLab and Selenium (the ``test`` extra, requirements.txt) and Chromium with its driver
(Debian: ``apt-get install chromium chromium-driver``; ``.ci/run`` installs them). Where one is
missing the test is skipped with a line naming what to install, except in CI: with the environment
variable ``CI=true`` (set by CI) a missing browser or package fails the test instead.
Run it alone with ``python -m pytest -m slow tests/test_browser.py``.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # two JupyterLab kernels train the article's VGG16 for an epoch

LANGUAGES = ["en", "ja"]
#: The smallest settings that train and draw every figure: the shipped sample, 10 training pictures
#: per class (2 test pictures per class) in two batches of 50, and two epochs: with one, step 4's
#: curves are single points, which the article's line plots leave invisible (empty axes).
PARAMETERS = {"data": "sample", "subset": 10, "seed": 0, "epochs": 2, "batch_size": 50}
#: The pictures that 00's plotting cells draw: the grid of sample pictures (step 1), the article's
#: two figures (step 4), and the same two redrawn beside the article's curves (step 4).
FIGURES = {"s1-samples": 1, "s4-figures": 2, "s4-plot": 2}
#: The figures with this run's curves, training in pure blue and test in pure red (the article's
#: colours), and the fewest such pixels of each colour that show a curve: the legend's short line
#: alone has about 90; two epochs across the axes have well over a thousand, and in the figures
#: beside the article's curves, whose axis runs to its 20 epochs, about a hundred more.
CURVES = {"s4-figures": 500, "s4-plot": 140}
PLOTS = re.compile(r"\bplt\.|show_samples\(|plot_metric\(")  # what a plotting cell calls
#: What the tables print, in words that no translation of the cells changes: Keras' summary, the
#: parameter counts (this model's and the article's, the same), the metrics, the files saved.
SUMMARY_TOTAL = "Total params: 33,655,114"
TABLES = {
    "s2-count": ["33,655,114", "33,646,666", "8,448"],
    "s3-result": ["accuracy", "val_accuracy", "loss", "val_loss"],
    "s5-save": ["cifar10-CNN.keras", "cifar10-CNN.weights.h5", "cifar10-CNN.h5", "MB"],
}
#: fit's log, verbose=2: one line per epoch of two steps of 50 pictures, with the test scores
FIT_LINE = re.compile(
    r"^2/2 - .* - accuracy: [\d.]+ - loss: [\d.]+ - val_accuracy: [\d.]+ - val_loss: ", re.M
)
#: A markdown reference link left as text: its definition ("[name]: address") is missing.
UNRESOLVED = re.compile(r"\]\[[\w-]+\]")
#: The screenshots: (file name, the cell to scroll to, the part of it to show: the cell or its
#: output, at the top of the window, or its -center or -end in the window's middle or at its bottom).
SHOTS = [
    ("01-opened", None, None),  # taken before running, as the notebook opens
    ("02-setup", "install", "output-center"),
    ("03-pictures", "s1-samples", "cell"),
    ("04-summary", "s2-listing-summary", "output"),
    ("05-summary-end", "s2-listing-summary", "output-end"),
    ("06-fit", "s3-train", "cell"),
    ("07-curves", "s4-figures", "output"),
    ("08-article-curves", "s4-plot", "output"),
    ("09-saved", "s5-save", "cell"),
    ("10-end", "exercises", "cell-end"),
]
RUN_TIMEOUT = 900  # seconds for one notebook's cells; about a minute on a 2-core CPU
WINDOW = (1400, 1050)


def missing(what):
    """Skip (a contributor's machine) or, where ``CI=true``, fail: CI must run this check."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {what}", pytrace=False)
    pytest.skip(what)


def tools():
    """(chromium, chromedriver) paths; skips (or fails in CI) where something is missing."""
    import importlib.util

    packages = [name for name in ("jupyterlab", "selenium") if importlib.util.find_spec(name) is None]
    if packages:
        missing(f"{' and '.join(packages)} not installed: pip install -r requirements.txt")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        missing("Chromium or its driver not found: apt-get install chromium chromium-driver (Debian)")
    return chromium, driver


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_settings(folder):
    """JupyterLab's user settings for the check: every cell in the page, no news question."""
    settings = {
        # every cell stays in the page (no virtual scrolling), so each one can be read and seen
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        # no toast asking about Jupyter news over the screenshots
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, values in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port and a headless Chromium; both shut down at the end.

    Yields ``(driver, url, root, screenshots)``: ``url(path)`` is a page of the server with the
    token, ``root`` the folder it serves.
    """
    chromium, chromedriver = tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    tmp = tmp_path_factory.mktemp("browser")
    root, jupyter = tmp / "root", tmp / "jupyter"
    root.mkdir()
    write_settings(jupyter / "settings")
    screenshots = Path(os.environ.get("VGGCIFAR_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    screenshots.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # this run's own Jupyter folders: nothing read from or written to the user's
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend: figures shown in the page (CI sets Agg)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True",  # CI runs as root
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: its commands and widgets
        f"--LabApp.user_settings_dir={jupyter / 'settings'}",
        f"--LabApp.workspaces_dir={jupyter / 'workspaces'}",
    ]
    log = (tmp / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab stopped at start:\n{(tmp / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                request = urllib.request.Request(
                    f"{base}/api/status", headers={"Authorization": f"token {token}"}
                )
                with urllib.request.urlopen(request, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer:\n{(tmp / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
        ):
            options.add_argument(argument)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
        driver.set_script_timeout(300)

        def url(path):
            return f"{base}/{path}?token={token}"

        yield driver, url, root, screenshots
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()  # JupyterLab shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()


def run_js(driver, body, *args):
    """Run ``body`` (JavaScript, may ``await``; ``app`` is JupyterLab) in the page; its return value."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const args = Array.from(arguments).slice(0, -1);"
        "const app = window.jupyterapp;"
        f"(async () => {{ {body} }})().then("
        "  value => done({value: value === undefined ? null : value}),"
        "  error => done({error: String((error && error.stack) || error)}));"
    )
    answer = driver.execute_async_script(script, *args)
    assert "error" not in answer, answer.get("error")
    return answer["value"]


def wait_for(what, check, timeout, every=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# The state of the open notebook, cell by cell: the model's counts and outputs, and the page's.
READ_CELLS = """
const panel = app.shell.currentWidget;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.widgets.map(cell => {
  const model = cell.model;
  const found = {id: model.id, type: model.type, inPage: cell.node.isConnected};
  if (model.type === 'markdown') {
    const heading = cell.node.querySelector('.jp-RenderedMarkdown h1, .jp-RenderedMarkdown h2');
    found.heading = heading ? heading.textContent.replace(/¶$/, '').trim() : null;
    const rendered = cell.node.querySelector('.jp-RenderedMarkdown');
    found.text = rendered ? rendered.innerText : null;
  }
  if (model.type !== 'code') return found;
  const outputs = [];
  for (let i = 0; i < model.outputs.length; i++) {
    const output = model.outputs.get(i);
    outputs.push({type: output.type, mimes: Object.keys(output.data)});
  }
  const area = cell.outputArea.node;
  const images = Array.from(area.querySelectorAll('img'));
  const stderr = Array.from(area.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'));
  return Object.assign(found, {
    count: model.executionCount,
    prompt: cell.node.querySelector('.jp-InputPrompt').textContent.trim(),
    outputs: outputs,
    images: images.map(img => ({
      decoded: img.complete && img.naturalWidth > 0,
      width: img.naturalWidth, height: img.naturalHeight,
      shown: img.getBoundingClientRect().width > 0})),
    html: area.querySelectorAll('.jp-RenderedHTMLCommon').length,
    stderr: stderr.map(node => node.textContent.slice(0, 500)),
    text: area.innerText,
  });
});
return {path: panel.context.path, kernel: kernel ? kernel.status : null, cells: cells};
"""

SCROLL = """
const [id, part] = args;
const panel = app.shell.currentWidget;
const cell = panel.content.widgets.find(cell => cell.model.id === id);
const node = part.startsWith('output') ? cell.outputArea.node : cell.node;
node.scrollIntoView({block: part.endsWith('-end') ? 'end' : part.endsWith('-center') ? 'center' : 'start'});
await new Promise(resolve => setTimeout(resolve, 400));
"""


def open_notebook(driver, url, path):
    """Open ``path`` in a fresh JupyterLab workspace; returns when its kernel is idle."""
    workspace = f"lab/workspaces/check-{uuid.uuid4().hex[:8]}/tree/{path}"
    driver.get(url(workspace))
    wait_for("JupyterLab", lambda: driver.execute_script("return !!window.jupyterapp"), 120)
    found = run_js(
        driver,
        """
        await app.restored;
        for (let i = 0; i < 600; i++) {
          const panel = app.shell.currentWidget;
          if (panel && panel.context && panel.context.path === args[0] && panel.content.widgets.length) {
            await panel.context.ready;
            await panel.sessionContext.ready;
            if (panel.sessionContext.session && panel.sessionContext.session.kernel
                && panel.sessionContext.session.kernel.status === 'idle') {
              if (!app.shell.leftCollapsed) app.shell.collapseLeft();  // more room for the notebook
              return panel.sessionContext.session.kernel.name;
            }
          }
          await new Promise(resolve => setTimeout(resolve, 250));
        }
        return null;
        """,
        path,
    )
    assert found, f"{path} did not open with an idle kernel"
    return found


def colour_pixels(png):
    """The pure blue and pure red pixels of a base64 PNG."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((r < 40) & (g < 40) & (b > 215)).sum()), int(((r > 215) & (g < 40) & (b < 40)).sum())


def screenshot(driver, folder, name, cell=None, part=None):
    if cell is None:
        run_js(driver, "app.shell.currentWidget.content.node.scrollTop = 0;")
    else:
        run_js(driver, SCROLL, cell, part)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path.name


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_student_opens_the_article_in_jupyterlab_and_runs_every_cell(lab, language):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    driver, url, root, screenshots = lab
    started = time.monotonic()
    # the student's notebook with the small settings written in, not run (papermill's reader
    # gives every cell the metadata its parameterize_notebook expects)
    notebook = load_notebook_node(str(REPO / "notebooks" / language / "00_article.ipynb"))
    run_dir = root / "runs" / language
    notebook = parameterize_notebook(notebook, {**PARAMETERS, "run_dir": str(run_dir)})
    path = f"{language}/00_article.ipynb"
    (root / language).mkdir()
    nbformat.write(notebook, root / path)
    code_ids = [c.id for c in notebook.cells if c.cell_type == "code"]
    plotting = [c.id for c in notebook.cells if c.cell_type == "code" and PLOTS.search(c.source)]
    assert sorted(plotting) == sorted(FIGURES), "00's plotting cells changed: update FIGURES"

    assert open_notebook(driver, url, path) == "python3"
    shots = [screenshot(driver, screenshots, f"{language}-{SHOTS[0][0]}")]
    run_js(driver, "app.commands.execute('notebook:run-all-cells'); return null;")

    def finished():
        state = run_js(driver, READ_CELLS)
        code = [c for c in state["cells"] if c["type"] == "code"]
        running = [c["id"] for c in code if c["prompt"] == "[*]:"]
        failed = [c["id"] for c in code if any(o["type"] == "error" for o in c["outputs"])]
        all_numbered = all(c["count"] for c in code)
        if state["kernel"] == "idle" and not running and (all_numbered or failed):
            return state
        return None

    state = wait_for(f"the cells of {path} to run", finished, RUN_TIMEOUT, every=2)
    ran = time.monotonic() - started
    cells = {c["id"]: c for c in state["cells"]}
    code = [c for c in state["cells"] if c["type"] == "code"]

    # no error in any cell, every code cell ran, in order, and shows its number
    errors = {c["id"]: c["text"][-1500:] for c in code if any(o["type"] == "error" for o in c["outputs"])}
    assert not errors, f"cells with an error output: {errors}"
    assert [c["id"] for c in code] == code_ids and all(c["inPage"] for c in state["cells"])
    assert [c["count"] for c in code] == list(range(1, len(code) + 1))
    assert [c["prompt"] for c in code] == [f"[{n}]:" for n in range(1, len(code) + 1)]

    # the figures: decoded pictures, as many as each plotting cell draws, and no others
    images = {c["id"]: c["images"] for c in code if c["images"]}
    assert {k: len(v) for k, v in images.items()} == FIGURES
    assert all(
        image["decoded"] and image["shown"] and image["width"] > 200 for v in images.values() for image in v
    )

    # the tables: the model summary (Keras prints it as HTML) with every layer of the listing,
    # the parameter counts, the result of fit, the saved files
    summary = cells["s2-listing-summary"]
    layers = re.findall(r'name="(\w+)"', next(c.source for c in notebook.cells if c.id == "s2-listing"))
    assert len(layers) == 49 and summary["html"] >= 1 and SUMMARY_TOTAL in summary["text"]
    assert [name for name in layers if name not in summary["text"]] == [], "layers missing from the summary"
    for cell_id, words in TABLES.items():
        text = cells[cell_id]["text"]
        assert all(word in text for word in words), (cell_id, text)
    assert all(cells["s2-count"]["text"].count(number) == 2 for number in TABLES["s2-count"])
    fit = cells["s3-train"]["text"]
    assert len(FIT_LINE.findall(fit)) == PARAMETERS["epochs"] and "Epoch 2/2" in fit, fit
    assert "All three files give back the same model." in cells["s5-reload"]["text"]

    # the markdown rendered, in the notebook's language: the title and every step's heading
    headings = [cells[i]["heading"] for i in ["title", *(f"step-{n}" for n in range(1, 6))]]
    assert all(headings), headings
    japanese = [any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in h) for h in headings]
    assert japanese == [language == "ja"] * len(headings), headings
    markdown = [c for c in state["cells"] if c["type"] == "markdown"]
    assert all(c["text"] for c in markdown), [c["id"] for c in markdown if not c["text"]]
    # a reference link whose definition is missing shows as "[title][name]", not as a link
    unresolved = {c["id"]: UNRESOLVED.findall(c["text"]) for c in markdown if UNRESOLVED.search(c["text"])}
    assert not unresolved, unresolved

    # saved by JupyterLab and read back: the same outputs in the file
    run_js(driver, "await app.commands.execute('docmanager:save'); return null;")
    saved = nbformat.read(root / path, as_version=4)
    ids = [c.id for c in saved.cells]
    in_file = {
        c.id: sum("image/png" in o.get("data", {}) for o in c.outputs)
        for c in saved.cells
        if c.cell_type == "code" and any("image/png" in o.get("data", {}) for o in c.outputs)
    }
    assert in_file == FIGURES
    assert not [c.id for c in saved.cells if any(o.output_type == "error" for o in getattr(c, "outputs", []))]
    curves = {}
    for cell_id in CURVES:  # the curves are drawn, not only the axes and the legend
        for output in (
            o for o in saved.cells[ids.index(cell_id)].outputs if "image/png" in o.get("data", {})
        ):
            blue, red = colour_pixels(output["data"]["image/png"])
            curves.setdefault(cell_id, []).append({"blue": blue, "red": red})
            assert min(blue, red) > CURVES[cell_id], (cell_id, blue, red)
    assert json.loads((run_dir / "history.json").read_text())["epoch"] == [1, 2]

    for name, cell_id, part in SHOTS[1:]:
        shots.append(screenshot(driver, screenshots, f"{language}-{name}", cell_id, part))
    run_js(driver, "await app.shell.currentWidget.sessionContext.shutdown(); return null;")
    report = {
        "notebook": path,
        "parameters": PARAMETERS,
        "seconds_to_run_all": round(ran, 1),
        "seconds_in_all": round(time.monotonic() - started, 1),
        "code_cells": len(code),
        "images": {k: len(v) for k, v in images.items()},
        "curve_pixels": curves,
        "html_outputs": {c["id"]: c["html"] for c in code if c["html"]},
        "stderr": {c["id"]: c["stderr"] for c in code if c["stderr"]},
        "screenshots": shots,
    }
    (screenshots / f"report-{language}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
