#!/usr/bin/env python3
"""Run the five notebooks in order with papermill: the whole article in one command.

    python tools/run_notebooks.py                                # the article's settings
    python tools/run_notebooks.py -p subset 500 -p epochs 2      # a quick run on a CPU
    python tools/run_notebooks.py -p data synthetic -p subset 50 -p epochs 1 --run-dir runs/try

Every notebook gets the same parameters; the executed copies (with their outputs)
are written to ``<run_dir>/notebooks/``, beside what the notebooks themselves save there.
"""

import argparse
import logging
import sys
from pathlib import Path

import papermill

from vggcifar.settings import ParameterError, check_params, data_source_kind

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0[1-5]_*.ipynb"))


def parse_value(text):
    """'20' → 20, '0.5' → 0.5, 'None' → None, 'True'/'False' → True/False, anything else text."""
    literals = {"None": None, "True": True, "False": False}
    if text in literals:
        return literals[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def absolute_paths(parameters):
    """Paths typed on the command line, made absolute from where the command runs.

    The notebooks run in ``notebooks/``; without this, ``-p data ../shared/x.tar.gz``
    typed at the project's root would be looked for beside the notebooks.
    """
    found = {}
    data = parameters.get("data")
    if isinstance(data, str) and data_source_kind(data) == "folder":
        found["data"] = str(Path(data).expanduser().resolve())
    if isinstance(parameters.get("data_cache"), str):
        found["data_cache"] = str(Path(parameters["data_cache"]).expanduser().resolve())
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a notebook parameter, e.g. -p epochs 5")
    parser.add_argument("--run-dir", default="runs/article",
                        help="run folder, relative to the current folder (default: runs/article)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # shows the cells' output
    run_dir = Path(args.run_dir).resolve()
    parameters = {name: parse_value(value) for name, value in args.parameter}
    parameters["run_dir"] = str(run_dir)
    try:  # a misspelled name or a bad value stops here, before anything runs
        check_params(**parameters)
    except ParameterError as error:
        parser.error(str(error))
    parameters.update(absolute_paths(parameters))
    executed = run_dir / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    for notebook in NOTEBOOKS:
        print(f"--- {notebook.name} with {parameters}", flush=True)
        papermill.execute_notebook(notebook, executed / notebook.name, parameters=parameters,
                                   cwd=str(REPO / "notebooks"), log_output=True,
                                   progress_bar=False)
    print(f"Done. Results in {run_dir}; executed notebooks in {executed}")


if __name__ == "__main__":
    sys.exit(main())
