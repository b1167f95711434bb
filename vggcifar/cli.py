"""The command line: ``python -m vggcifar`` (or ``vggcifar``) with two commands.

    python -m vggcifar run                                   # 01-05 with the article's settings
    python -m vggcifar run -p subset 500 -p epochs 2 --run-dir runs/small
    python -m vggcifar run --recipe quick -p data sample -p epochs 5 -p batch_size 128
    python -m vggcifar sweep --param batch_size=32,64,128 -p epochs 3 --out runs/batch-sizes
    python -m vggcifar sweep --sets sets.yaml --notebooks 06 --out runs/recipes

``run`` executes the five notebooks of the article in order with papermill, every one
with the same parameters (those it has); the executed copies land in
``<run_dir>/notebooks/``. ``--recipe quick`` (or ``improved``) trains step 3 with that
recipe of notebook 06 instead of the article's Adam, in 06.
``sweep`` runs notebooks once per parameter set (see :mod:`vggcifar.sweeps`).
Values are typed as a parameters cell types them (``5``, ``0.1``, ``True``, ``None``,
text). Names and values are checked before anything runs; paths are taken from the
folder the command runs in.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .language import LANGUAGES
from .language import VARIABLE as LANGUAGE_VARIABLE
from .layout import EXECUTED, FIGURES, METRICS, RunFolderError, in_the_way, read_record
from .runner import execute
from .settings import RECIPES, ParameterError, check_params
from .sweeps import describe, expand, notebook_parameters, parse_grid, parse_value, plan, read_sets, run_sweep

#: The article's five steps, in order.
ARTICLE_CHAIN = ("01_data", "02_model", "03_training", "04_plots", "05_saving")
#: The same steps with another recipe than the article's: 06 trains instead of 03, which
#: shows the article's own compile and fit.
RECIPE_CHAIN = ("01_data", "02_model", "06_improvements", "04_plots", "05_saving")


def typed(pairs):
    """``-p NAME VALUE`` pairs → parameters, each value typed as a parameters cell types it.

    A name given twice is refused (argparse keeps both, and the later would silently win).
    """
    given = {}
    for name, value in pairs:
        if name in given:
            raise ParameterError(
                f"-p {name} is given twice ({given[name]!r}, {value!r}); give each parameter once"
            )
        given[name] = parse_value(value)
    return given


def run_article(args, parser):
    recipe = args.recipe
    run_dir = Path(args.run_dir or f"runs/{recipe}").expanduser().resolve()
    try:  # the same check as a sweep's: names in the notebooks, values as they check them
        given = typed(args.parameter)
        if recipe != "article":  # 06 trains with the recipe; the comparison with 03's run is left out
            given = {"recipe": recipe, "article_run_dir": "", **given}
        notebooks, [(_, parameters)] = plan([given], ARTICLE_CHAIN if recipe == "article" else RECIPE_CHAIN)
        check_params(run_dir=str(run_dir))
    except ParameterError as error:
        parser.error(str(error))
    problem = in_the_way(run_dir)  # before anything is written: the executed notebooks go in first
    if problem:
        parser.error(
            f"--run-dir {str(run_dir)!r} cannot be used: {problem}. Nothing was written: "
            "choose a new or empty folder, or a run folder of this project"
        )
    parameters["run_dir"] = str(run_dir)
    shown = ", ".join(f"{name}={value!r}" for name, value in given.items() if name != "article_run_dir")
    steps = "The article's five steps" + (
        f", step 3 by 06 with the {recipe} recipe" if recipe != "article" else ""
    )
    print(f"{steps}; {shown or 'its own settings'}; run folder {run_dir}", flush=True)
    executed = run_dir / EXECUTED
    executed.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for number, notebook in enumerate(notebooks, 1):
        print(f"[{number} of {len(notebooks)}] {notebook.stem}", flush=True)
        accepted = notebook_parameters(notebook)  # each notebook gets the parameters it has
        execute(notebook, executed / notebook.name, {k: v for k, v in parameters.items() if k in accepted})
    print(summary(run_dir, time.perf_counter() - started))
    return 0


def summary(run_dir, seconds):
    """A few lines on a finished run: its test figures, its time, where its files are."""
    minutes, rest = divmod(round(seconds), 60)
    lines = [f"Done in {minutes} min {rest:02d} s."]
    try:
        metrics = read_record(run_dir / METRICS) if (run_dir / METRICS).is_file() else {}
    except RunFolderError as error:
        metrics, lines[0] = {}, f"{lines[0]} {error}"
    wanted = ("test_accuracy", "test_loss", "epochs", "mean_epoch_seconds")
    if all(isinstance(metrics.get(key), (int, float)) for key in wanted):
        lines[0] += (
            f" Test accuracy {metrics['test_accuracy']:.1%} (loss {metrics['test_loss']:.3f}) "
            f"after {metrics['epochs']} epoch(s), {metrics['mean_epoch_seconds']:.0f} s an epoch."
        )
    lines.append(f"Run folder: {run_dir}")
    figures = [name for name in FIGURES if (run_dir / name).is_file()]
    if figures:
        lines.append(f"Figures: {', '.join(str(run_dir / name) for name in figures)}")
    lines.append(f"Executed notebooks (every cell's output): {run_dir / EXECUTED}")
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
        "--recipe",
        choices=tuple(RECIPES),
        default="article",
        help="the training recipe: article (03, as the post trains), or improved / quick "
        "(06 trains in 03's place; quick learns in minutes on a CPU)",
    )
    run.add_argument(
        "--run-dir",
        help="run folder, relative to the current folder (default: runs/<recipe>, e.g. runs/article)",
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

    for command in (run, grid):
        command.add_argument(
            "--language",
            choices=LANGUAGES,
            help=f"the notebooks' language, en or ja (default: ${LANGUAGE_VARIABLE}, else en)",
        )

    args = parser.parse_args(argv)
    if args.language:  # the notebooks' folder (vggcifar.locate) and their kernels follow it
        os.environ[LANGUAGE_VARIABLE] = args.language
    return args.handler(args, commands.choices[args.command])


if __name__ == "__main__":
    sys.exit(main())
