"""Running a notebook with papermill, and what a console shows of it.

:func:`execute` is the one place where the project runs a notebook: the command line
(``python -m vggcifar run`` and ``sweep``), notebook 08's sweeps and the tests. Of
everything the notebook's cells print it shows, as the cells print it, only what a
person watching a run needs: one line per epoch (Keras' ``Epoch 3/20`` line joined
with the figures that follow it) and the run folder's own notes (a new run, resuming,
finished). The rest stays in the executed notebook, where every cell's output is
kept. An error still reaches the caller whole: papermill raises it with the failing
cell's traceback.

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

#: Keras' ``fit(verbose=2)`` prints ``Epoch 3/20``, then one line of figures for it (for a
#: single epoch only the figures).
EPOCH_LINE = re.compile(r"^Epoch (\d+)/(\d+)\s*$")
FIGURES_LINE = re.compile(r"^\s*\d+/\d+ - (.*)$")
#: Lines the cells print that a console shows as they are (the run folder's notes), in
#: English and in Japanese (vggcifar.language: the ja notebooks print them in Japanese).
NOTES = ("Run folder ", "Test split, scored once", "ランフォルダ ", "テストデータをここで")


class EpochEcho:
    """A file-like sink for a notebook's printed output that echoes one line per epoch.

    papermill writes each piece of a cell's standard output here; pieces need not end
    at a line's end, so the unfinished tail is kept until the rest arrives.
    """

    def __init__(self, indent="    ", out=None):
        self.indent, self.out = indent, out
        self.pending, self.epoch = "", None

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))
        return len(text)

    def flush(self):
        (self.out or sys.stdout).flush()

    def _line(self, line):
        epoch = EPOCH_LINE.match(line)
        if epoch:
            self.epoch = epoch.groups()
            return
        figures = FIGURES_LINE.match(line)
        if figures and self.epoch:
            done, total = self.epoch
            self._show(f"epoch {done}/{total}: {figures.group(1)}")
            self.epoch = None
        elif figures and "loss" in line:  # fit(epochs=1): Keras prints no "Epoch 1/1" line
            self._show(f"epoch 1/1: {figures.group(1)}")
        elif line.startswith(NOTES):
            self._show(line)

    def _show(self, text):
        print(f"{self.indent}{text}", file=self.out or sys.stdout, flush=True)


class Discard:
    """A file-like sink that keeps nothing (the cells' standard error: warnings, C++ logs)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def execute(notebook, output, parameters, indent="    "):
    """Run ``notebook`` with ``parameters``, writing the executed copy to ``output``.

    The notebook runs in its own folder (as Jupyter would run it). Its epoch lines and
    run-folder notes are printed as they come (see :class:`EpochEcho`); everything it
    prints is kept in ``output``. What the kernel process writes outside its cells goes
    to a temporary file, shown only when the notebook fails. Raises papermill's error
    when a cell fails.
    """
    import papermill

    notebook = Path(notebook)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow reads it when a kernel starts
    with tempfile.TemporaryFile() as kernel_log:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters,
                cwd=str(notebook.parent),
                log_output=False,
                progress_bar=False,
                stdout_file=EpochEcho(indent),
                stderr_file=Discard(),
                kernel_manager_class=kernel_manager_writing_to(kernel_log),
            )
        except Exception:
            kernel_log.seek(0)
            tail = kernel_log.read().decode("utf-8", "replace").strip().splitlines()[-20:]
            if tail:
                print(f"{notebook.name}: the kernel's last messages:", *tail, sep="\n", file=sys.stderr)
            raise


def kernel_manager_writing_to(log):
    """A Jupyter kernel manager whose kernels write their own standard error to ``log``.

    A kernel writes there outside its cells: ipykernel's messages as it shuts down
    ("KeyboardInterrupt caught in kernel" after a run that succeeded) and anything
    printed before a cell captures it. A cell's own output is captured as before.
    """
    from jupyter_client.manager import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **options):
            options.setdefault("stderr", log)
            return await super().start_kernel(**options)

    return KernelManager
