#!/usr/bin/env python3
"""How long does ``load_data("sample")`` take, the first time in a process and again?

    python bench/sample_loading.py              # 5 rounds
    python bench/sample_loading.py --rounds 10

Every round starts two fresh Python processes (so nothing is kept or imported from an
earlier round; Pillow's import counts where a load needs it):

* **general reader**: the sample archive read by :func:`vggcifar.folders.read_picture_folder`,
  the reader of any ``<split>/<class>/<image>`` folder or ``.tar.gz`` (``Image.open`` per
  picture): what ``data="path/to/cifar10-sample.tar.gz"`` costs;
* **load_data("sample")**: the SHA-256 check and the sample's own decoder, first in the
  process, then once more (the decoded arrays are kept for the process and copied).

A script that prints figures, not a test.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GENERAL = """
import json, time
from vggcifar.data import sample_file
from vggcifar.folders import read_picture_folder
start = time.perf_counter()
read_picture_folder(sample_file())
print(json.dumps({"general": time.perf_counter() - start}))
"""

SAMPLE = """
import json, time
from vggcifar.data import load_data
start = time.perf_counter()
load_data("sample")
first = time.perf_counter() - start
start = time.perf_counter()
load_data("sample")
print(json.dumps({"first": first, "again": time.perf_counter() - start}))
"""


def timed(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = {"general": [], "first": [], "again": []}
    for round_number in range(1, args.rounds + 1):
        found = {**timed(GENERAL), **timed(SAMPLE)}
        for name, seconds in found.items():
            figures[name].append(seconds)
        print(
            f"round {round_number}: general reader {found['general']:.3f} s, "
            f"load_data('sample') {found['first']:.3f} s, again {found['again']:.3f} s"
        )
    for name, label in (
        ("general", "general reader"),
        ("first", "load_data('sample'), first"),
        ("again", "load_data('sample'), again"),
    ):
        values = figures[name]
        print(f"{label}: median {statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})")


if __name__ == "__main__":
    main()
