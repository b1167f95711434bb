"""Sweeps: the same notebooks run once for every set of parameters, and the runs compared.

    python -m vggcifar sweep --param epochs=5,10,20 --param batch_size=32,64,128 --out runs/sweep

A sweep runs a chain of notebooks (by default 03_training then 04_plots) with
papermill, once per set of parameters: the grid of every ``--param`` (all
combinations), or the sets listed in a YAML or JSON file. The runs go one after
another (one GPU trains one model at a time). Each gets its own run folder,
``<out>/<name>/``, named after its swept values (``batch_size=32,epochs=5``), which
holds what the notebooks write there and the executed notebooks in ``notebooks/``;
``sweep.json`` in it records the run's status (finished, failed with its error,
interrupted).

Everything is checked before the first run starts: every name must be a parameter
of one of the notebooks (papermill reads their parameters cells), and every value
must pass the check the notebooks themselves call first
(:func:`vggcifar.settings.check_params`).

The same sweep started again skips the finished runs, resumes an interrupted one
from its backup (the run folder's callback does that, as after a Colab disconnect)
and tries failed ones again. The results — :func:`gather` reads them from each run's
``params.json``, ``history.json`` and ``metrics.json``, never from notebook outputs —
become ``results.csv``, ``results.md`` and two figures in ``<out>/``. Every run also
writes TensorBoard logs to ``<run>/logs/``, so ``tensorboard --logdir <out>`` compares
the runs epoch by epoch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import time
import traceback
from pathlib import Path

from .files import write_json, write_text
from .layout import (
    EXECUTED,
    HISTORY,
    METRICS,
    PARAMS,
    SWEEP_PLAN,
    SWEEP_RECORD,
    SWEEP_RESULTS,
    RunFolderError,
    in_the_way,
    is_finished,
    read_record,
    shown,
)
from .locate import NotebooksMissing, notebooks_folder
from .settings import ParameterError, check_params, data_source_kind, known_parameter

#: The notebooks a sweep runs when none are named: train, then draw the curves.
DEFAULT_CHAIN = ("03_training", "04_plots")
#: The columns of the results table, after the swept parameters.
COLUMNS = (
    "status",
    "epochs_done",
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "seconds_per_epoch",
    "error",
)
#: The most runs one sweep plans: a grid grows fast (40 values of 4 names are 2.5 million
#: runs), and a mistyped one would check for minutes, then train for months.
MAX_RUNS = 1000
#: Longest run folder name, in bytes of UTF-8 (file systems allow 255; the rest of the
#: path needs room too); longer names are cut and end with a hash of the whole name.
MAX_NAME_BYTES = 120


# --- what to run ------------------------------------------------------------------


def parse_value(text):
    """Text typed on a command line, typed as a parameters cell types it.

    ``"20"`` → 20, ``"0.5"`` → 0.5, ``"None"`` → None, ``"True"``/``"False"`` → True/False;
    anything else stays text.
    """
    literals = {"None": None, "True": True, "False": False}
    if text in literals:
        return literals[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_grid(options):
    """``["epochs=5,10", "batch_size=32"]`` → ``{"epochs": [5, 10], "batch_size": [32]}``."""
    grid = {}
    for option in options:
        name, equals, values = option.partition("=")
        if not equals or not name.strip() or not values.strip():
            raise ParameterError(f"--param must look like name=value1,value2; got {option!r}")
        if name.strip() in grid:  # the later one would silently win
            raise ParameterError(
                f"--param {name.strip()} is given twice; give all its values in one: "
                f"--param {name.strip()}=value1,value2"
            )
        grid[name.strip()] = [parse_value(value.strip()) for value in values.split(",")]
    return grid


def check_count(count):
    """Refuse a sweep of more than :data:`MAX_RUNS` runs, before anything is checked or made."""
    if count > MAX_RUNS:
        raise ParameterError(
            f"the sweep has {count:,} runs; a sweep takes at most {MAX_RUNS:,} (vggcifar.sweeps.MAX_RUNS). "
            "Sweep fewer values, or split the grid into several sweeps"
        )


def expand(grid):
    """Every combination of a grid, in the order given: a list of parameter sets.

    A grid of more than :data:`MAX_RUNS` combinations is refused before it is made.
    """
    check_count(math.prod(len(values) for values in grid.values()))
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def read_sets(path):
    """Parameter sets from a YAML or JSON file: a list of sets, or a grid (name → list)."""
    import yaml  # papermill's own dependency; JSON is YAML too

    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ParameterError(f"--sets: cannot read {str(path)!r} ({error})") from error
    if isinstance(content, dict) and all(isinstance(v, list) for v in content.values()):
        return expand(content)
    if isinstance(content, list) and content and all(isinstance(s, dict) for s in content):
        return content
    raise ParameterError(
        f"--sets: {str(path)!r} must hold a list of parameter sets "
        "(- {epochs: 5, batch_size: 32}) or a grid ({epochs: [5, 10]})"
    )


def find_notebook(name):
    """``"03"``, ``"03_training"`` or a path → the notebook's path.

    A path (with a folder, a suffix, or naming a file that exists) must be a Jupyter
    notebook; a pattern (``*``, ``?``, ``[``) is refused, as the shell would have expanded it.
    """
    if any(c in str(name) for c in "*?["):
        raise ParameterError(
            f"--notebooks takes notebook names or paths, not patterns; got {name!r} "
            "(e.g. --notebooks 03_training 04_plots)"
        )
    path = Path(name).expanduser()
    if path.is_absolute() or len(path.parts) > 1 or path.suffix or path.exists():
        return _notebook_file(path)
    try:  # shipped in the package, or a clone's notebooks/ (vggcifar.locate)
        folder = notebooks_folder()
    except (NotebooksMissing, ValueError) as error:  # none shipped, or an unknown language
        raise ParameterError(str(error)) from None
    found = sorted(folder.glob(f"{name}*.ipynb"))
    if len(found) != 1:
        available = sorted(p.stem for p in folder.glob("*.ipynb"))
        raise ParameterError(f"notebook {name!r} not found; available: {available}")
    return found[0]


def _notebook_file(path):
    """``path`` as a notebook to run, or a :class:`ParameterError` saying why it is not one."""
    if not path.exists():
        raise ParameterError(f"--notebooks: {str(path)!r} not found")
    if not path.is_file() or path.suffix != ".ipynb":
        raise ParameterError(f"--notebooks: {str(path)!r} is not a Jupyter notebook (a .ipynb file)")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ParameterError(f"--notebooks: {str(path)!r} cannot be read as a notebook ({error})") from None
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        raise ParameterError(f"--notebooks: {str(path)!r} is not a Jupyter notebook (it has no cells)")
    return path.resolve()


def notebook_parameters(notebook):
    """The names of a notebook's parameters, as papermill reads its parameters cell."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def absolute_paths(parameters):
    """The path parameters among ``parameters``, made absolute from the current folder.

    The notebooks run in ``notebooks/``; without this, ``data=../shared/x.tar.gz``
    typed at the project's root would be looked for beside the notebooks.
    """
    found = {}
    data = parameters.get("data")
    if isinstance(data, str) and data_source_kind(data) == "folder":
        found["data"] = str(Path(data).expanduser().resolve())
    for name in ("data_cache", "run_dir", "article_run_dir", "model_path", "picture"):
        if isinstance(parameters.get(name), str) and parameters[name]:
            found[name] = str(Path(parameters[name]).expanduser().resolve())
    return found


def run_name(params, swept):
    """The run folder's name: the swept values, ``batch_size=32,epochs=5``.

    At most :data:`MAX_NAME_BYTES` bytes of UTF-8: a longer name (a data path with long
    folder names, say) is cut and ends with a short hash of the whole, so that two runs
    still get two folders. The full parameters stay in the run's ``sweep.json`` and in
    the results table.
    """
    full = ",".join(f"{name}={params[name]}" for name in swept) or "run"
    name = "".join(c if c.isalnum() or c in "=,._-" else "_" for c in full)
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:10]
    kept = name.encode("utf-8")[: MAX_NAME_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{kept}-{digest}"


def plan(sets, chain=DEFAULT_CHAIN, fixed=None):
    """Check a sweep before anything runs; return ``(notebooks, runs)``.

    ``runs`` is a list of ``(name, parameters)``; ``fixed`` parameters go to every
    run. Raises :class:`ParameterError` for an unknown name (naming the notebooks'
    parameters), a bad value, a parameter set that repeats, or ``run_dir`` (each
    run has its own).
    """
    notebooks = [find_notebook(name) for name in chain]
    known = set().union(*(notebook_parameters(nb) for nb in notebooks))
    fixed = dict(fixed or {})
    sets = [dict(s) for s in sets]
    if not sets:
        raise ParameterError("a sweep needs at least one parameter set (--param or --sets)")
    check_count(len(sets))
    swept = list(dict.fromkeys(name for s in sets for name in s))
    both = sorted(set(swept) & set(fixed))
    if both:  # the swept values would silently win over -p
        raise ParameterError(
            f"{both[0]} is given both as swept (--param or --sets) and for every run (-p); give it one way"
        )
    for name in [*swept, *fixed]:
        if name == "run_dir":
            raise ParameterError("run_dir is set by the sweep: every run gets <out>/<name>/")
        if name not in known:
            raise ParameterError(
                f"unknown parameter {name!r}; the notebooks "
                f"{[nb.stem for nb in notebooks]} take: {sorted(known)}"
            )
    runs = []
    for values in sets:
        params = {**fixed, **values}
        check_params(**{k: v for k, v in params.items() if known_parameter(k)})
        runs.append((run_name(values, swept), {**params, **absolute_paths(params)}))
    names = [name for name, _ in runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParameterError(f"these parameter sets appear more than once: {repeated}")
    return notebooks, runs


# --- running it -------------------------------------------------------------------


def run_sweep(sets, out, chain=DEFAULT_CHAIN, fixed=None, execute=None):
    """Run every parameter set through the notebooks, one after another; return the rows.

    Checked first (:func:`plan`). A finished run is skipped; a failed one is recorded
    and the next one starts; Ctrl-C records the current run as interrupted and stops,
    leaving the finished runs as they are. ``execute`` runs one notebook
    (:func:`vggcifar.runner.execute`, which prints its epoch lines; replaceable for tests).
    """
    print(f"Checking {len(sets):,} run(s) before the first starts...", flush=True)
    notebooks, runs = plan(sets, chain, fixed)
    out = Path(out)
    check_out(out, [name for name, _ in runs])
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / SWEEP_PLAN,
        {"notebooks": [nb.stem for nb in notebooks], "runs": dict(runs)},
    )
    if execute is None:
        from .runner import execute
    accepted = {nb: notebook_parameters(nb) for nb in notebooks}
    for number, (name, params) in enumerate(runs, 1):
        run_dir = out / name
        try:
            record = _optional(run_dir, SWEEP_RECORD)
        except RunFolderError:  # the sweep's own record: the run is tried again and recorded anew
            record = {}
        if record.get("status") == "finished" and is_finished(run_dir):
            print(f"[run {number} of {len(runs)}] {name}: finished before, skipped", flush=True)
            continue
        again = {
            "failed": " (failed before: trying again)",
            "interrupted": " (interrupted before: resuming)",
        }.get(record.get("status"), "")
        print(f"[run {number} of {len(runs)}] {name}{again}", flush=True)
        (run_dir / EXECUTED).mkdir(parents=True, exist_ok=True)
        started = time.time()
        write_json(run_dir / SWEEP_RECORD, {"status": "running", "parameters": params})
        try:
            for notebook in notebooks:
                given = {
                    k: v
                    for k, v in {**params, "run_dir": str(run_dir.resolve())}.items()
                    if k in accepted[notebook]
                }
                print(f"    {notebook.stem}", flush=True)
                execute(notebook, run_dir / EXECUTED / notebook.name, given, indent="      ")
        except KeyboardInterrupt:
            write_json(run_dir / SWEEP_RECORD, {"status": "interrupted", "parameters": params})
            print(
                f"Interrupted during {name}; the finished runs are kept. The same command "
                "resumes from this run's last backup.",
                flush=True,
            )
            raise
        except Exception as error:  # a failed run must not stop the others
            message = _last_line(error)
            write_json(
                run_dir / SWEEP_RECORD,
                {
                    "status": "failed",
                    "parameters": params,
                    "error": message,
                    "traceback": traceback.format_exc()[-4000:],
                },
            )
            print(f"    failed: {message}", flush=True)
            continue
        write_json(
            run_dir / SWEEP_RECORD,
            {"status": "finished", "parameters": params, "seconds": round(time.time() - started, 1)},
        )
    rows = gather(out, [name for name, _ in runs])
    swept = list(dict.fromkeys(k for s in sets for k in s))
    write_results(rows, out, swept)
    import matplotlib.pyplot as plt

    from .plots import plot_sweep

    histories = {row["run"]: _history(out / row["run"]) if row["status"] != "damaged" else {} for row in rows}
    figures = plot_sweep(rows, histories, swept, out)
    for figure in figures:  # saved in out; a notebook draws its own with plot_sweep
        plt.close(figure)
    return rows


def _last_line(error):
    """The part of an error a table can show: its last non-empty line, shortened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text[:300]


# --- what came out ----------------------------------------------------------------


def check_out(out, names):
    """Refuse ``out`` unless it is new or empty, or a sweep folder of this project.

    A sweep writes ``results.csv``, ``results.md`` and two figures into ``out``, and a
    run folder per set; in a folder of someone else's those could replace the user's
    own files. It is ours when it holds the sweep's plan (``sweep-plan.json``, written
    at a sweep's first start) or run folders with ``sweep.json``. A folder that is not
    ours is refused rather than written beside under new names: the same command started
    again must find its own runs and table, and a fresh folder costs one word. Each run
    folder must be usable too (:func:`vggcifar.layout.in_the_way`): its executed
    notebooks are written before the notebooks check it.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {str(out)!r} is a file, not a folder; choose another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    ours = (out / SWEEP_PLAN).is_file() or any((out / n / SWEEP_RECORD).is_file() for n in entries)
    if entries and not ours:
        results = [name for name in SWEEP_RESULTS if name in entries]
        replaced = f"; its {', '.join(results)} would be replaced" if results else ""
        raise ParameterError(
            f"--out {str(out)!r} holds files and is not a sweep folder of this project "
            f"({shown(entries)}){replaced}. Nothing was written: choose a new or empty folder for --out"
        )
    for name in names:
        problem = in_the_way(out / name)
        if problem:
            raise ParameterError(
                f"--out: the run folder {str(out / name)!r} cannot be used: {problem}. "
                "Nothing was written: move those files aside, or choose another --out"
            )


def _optional(run_dir, name):
    """A record of ``run_dir``, checked (:func:`vggcifar.layout.read_record`); ``{}`` when absent."""
    path = Path(run_dir) / name
    return read_record(path) if path.exists() else {}


def _history(run_dir):
    try:
        return _optional(run_dir, HISTORY)
    except RunFolderError:
        return {}


def gather(out, names):
    """One row per run, read from its run folder's records.

    A run whose record is damaged gets the status ``damaged`` and the reason, naming the
    file; the other runs' rows, the table and the figures do not depend on it.
    """
    rows = []
    for name in names:
        run_dir = Path(out) / name
        found, damage = {}, ""
        for record_name in (SWEEP_RECORD, PARAMS, METRICS, HISTORY):
            try:
                found[record_name] = _optional(run_dir, record_name)
            except RunFolderError as error:
                found[record_name] = {}
                damage = damage or f"{record_name} is damaged ({getattr(error, 'reason', error)})"
        record, params, metrics, history = (found[n] for n in (SWEEP_RECORD, PARAMS, METRICS, HISTORY))
        val = history.get("val_accuracy", [])
        seconds = history.get("seconds", [])
        parameters = record.get("parameters", {})
        rows.append(
            {
                "run": name,
                "parameters": {**params, **(parameters if isinstance(parameters, dict) else {})},
                "status": "damaged" if damage else record.get("status", "not run"),
                "epochs_done": len(history.get("epoch", [])),
                "final_val_accuracy": val[-1] if val else None,
                "best_val_accuracy": max(val) if val else None,
                "test_accuracy": metrics.get("test_accuracy") if not damage else None,
                "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
                "error": damage or record.get("error", ""),
            }
        )
    return rows


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def write_results(rows, out, swept):
    """``results.csv`` and ``results.md`` in ``out``: one row per run."""
    header = ["run", *swept, *COLUMNS]
    table = [
        [row["run"], *(row["parameters"].get(name) for name in swept), *(row[column] for column in COLUMNS)]
        for row in rows
    ]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in line] for line in table])
    write_text(Path(out) / "results.csv", text.getvalue())  # whole or not at all, as every record
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "/") for v in line) + " |" for line in table]
    write_text(Path(out) / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def describe(rows):
    """A short summary line per status, for the end of a sweep."""
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
