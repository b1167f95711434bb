"""The command line: ``python -m vggcifar`` (or ``vggcifar``) with two commands.

    python -m vggcifar run                                   # 01-05 with the article's settings
    python -m vggcifar run -p subset 500 -p epochs 2 --run-dir runs/quick
    python -m vggcifar sweep --param batch_size=32,64,128 -p epochs 3 --out runs/batch-sizes
    python -m vggcifar sweep --sets sets.yaml --notebooks 06 --out runs/recipes

``run`` executes the five notebooks of the article in order with papermill, every one
with the same parameters; the executed copies land in ``<run_dir>/notebooks/``.
``sweep`` runs notebooks once per parameter set (see :mod:`vggcifar.sweeps`).
Values are typed as a parameters cell types them (``5``, ``0.1``, ``True``, ``None``,
text). Names and values are checked before anything runs; paths are taken from the
folder the command runs in.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .files import read_json
from .runner import execute
from .runs import METRICS
from .settings import ParameterError, check_params
from .sweeps import describe, expand, parse_grid, parse_value, plan, read_sets, run_sweep

#: The article's five steps, in order.
ARTICLE_CHAIN = ("01_data", "02_model", "03_training", "04_plots", "05_saving")


def typed(pairs):
    """``-p NAME VALUE`` pairs → parameters, each value typed as a parameters cell types it."""
    return {name: parse_value(value) for name, value in pairs}


def run_article(args, parser):
    run_dir = Path(args.run_dir).expanduser().resolve()
    try:  # the same check as a sweep's: names in the notebooks, values as they check them
        notebooks, [(_, parameters)] = plan([typed(args.parameter)], ARTICLE_CHAIN)
        check_params(run_dir=str(run_dir))
    except ParameterError as error:
        parser.error(str(error))
    parameters["run_dir"] = str(run_dir)
    shown = ", ".join(f"{name}={value!r}" for name, value in parameters.items() if name != "run_dir")
    print(f"The article's five notebooks, {shown or 'with their defaults'}; run folder {run_dir}", flush=True)
    executed = run_dir / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for number, notebook in enumerate(notebooks, 1):
        print(f"[{number} of {len(notebooks)}] {notebook.stem}", flush=True)
        execute(notebook, executed / notebook.name, parameters)
    print(summary(run_dir, time.perf_counter() - started))
    return 0


def summary(run_dir, seconds):
    """A few lines on a finished run: its test figures, its time, where its files are."""
    minutes, rest = divmod(round(seconds), 60)
    lines = [f"Done in {minutes} min {rest:02d} s."]
    if (run_dir / METRICS).is_file():
        metrics = read_json(run_dir / METRICS)
        lines[0] += (
            f" Test accuracy {metrics['test_accuracy']:.1%} (loss {metrics['test_loss']:.3f}) "
            f"after {metrics['epochs']} epoch(s), {metrics['mean_epoch_seconds']:.0f} s an epoch."
        )
    lines.append(f"Run folder: {run_dir}")
    figures = [name for name in ("accuracy.png", "loss.png") if (run_dir / name).is_file()]
    if figures:
        lines.append(f"Figures: {', '.join(str(run_dir / name) for name in figures)}")
    lines.append(f"Executed notebooks (every cell's output): {run_dir / 'notebooks'}")
    return "\n".join(lines)


def sweep(args, parser):
    try:  # everything is checked (sweeps.plan) before the first run starts
        sets = expand(parse_grid(args.param)) if args.param else []
        if args.sets:
            sets += read_sets(args.sets)
        rows = run_sweep(sets, Path(args.out).expanduser().resolve(), args.notebooks, typed(args.parameter))
    except ParameterError as error:
        parser.error(str(error))
    except KeyboardInterrupt:
        return 130
    print(
        f"Sweep done: {describe(rows)}. Table: {Path(args.out) / 'results.md'}; "
        f"figures: sweep-curves.png, sweep-final.png; "
        f"TensorBoard: tensorboard --logdir {args.out}"
    )
    return 0 if all(row["status"] == "finished" for row in rows) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="vggcifar", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pair = {"nargs": 2, "action": "append", "default": [], "metavar": ("NAME", "VALUE")}

    run = commands.add_parser("run", help="the five notebooks of the article, in order")
    run.add_argument("-p", "--parameter", help="a notebook parameter, e.g. -p epochs 5", **pair)
    run.add_argument(
        "--run-dir",
        default="runs/article",
        help="run folder, relative to the current folder (default: runs/article)",
    )
    run.set_defaults(handler=run_article)

    grid = commands.add_parser("sweep", help="notebooks once per parameter set, and a table")
    grid.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a swept parameter and its values; several --param make a grid",
    )
    grid.add_argument("--sets", help="a YAML or JSON file of parameter sets (or of a grid)")
    grid.add_argument("-p", "--parameter", help="a parameter for every run, e.g. -p subset 500", **pair)
    grid.add_argument(
        "--notebooks",
        nargs="+",
        default=["03_training", "04_plots"],
        help="the notebooks each run executes, in order (default: 03_training 04_plots)",
    )
    grid.add_argument("--out", required=True, help="the sweep's folder: one run folder per set")
    grid.set_defaults(handler=sweep)

    args = parser.parse_args(argv)
    return args.handler(args, commands.choices[args.command])


if __name__ == "__main__":
    sys.exit(main())
