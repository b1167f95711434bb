#!/usr/bin/env python3
"""How long does CIFAR-10 take to load once it is on the machine (or on Drive)?

    python bench/data_loading.py            # real pictures from ../shared/datasets/
    python bench/data_loading.py --rounds 5

``data_cache`` keeps the official archive, as downloaded and checked, in a folder the
user names; every later load checks its SHA-256 again and reads the six batches out of
it. This script measures that load on an archive laid out exactly as the official one
(six pickled batches of 10,000 pictures in ``cifar-10-batches-py/``), built from the
shared real pictures (or from generated ones where they are absent), since the official
archive cannot be downloaded on the project's machine. For comparison it also times
decoding the same pictures from a ``.tar.gz`` of JPEG files, the other way to bring
CIFAR-10 along. A script that prints figures, not a test.
"""

import argparse
import io
import os
import pickle
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from vggcifar import cifar  # noqa: E402
from vggcifar.data import load_data  # noqa: E402

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"


def write_official_layout(path, pictures, labels):
    """A ``cifar-10-python.tar.gz`` with the official members, 10,000 pictures each."""
    names = [*cifar.TRAIN_BATCHES, cifar.TEST_BATCH]
    with tarfile.open(path, "w:gz") as archive:
        for i, name in enumerate(names):
            part = slice(i * 10000, (i + 1) * 10000)
            rows = pictures[part].transpose(0, 3, 1, 2).reshape(-1, 3072)
            raw = pickle.dumps({b"data": rows, b"labels": [int(v) for v in labels[part]]}, protocol=4)
            member = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            member.size = len(raw)
            archive.addfile(member, io.BytesIO(raw))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    source = str(SHARED_CIFAR) if SHARED_CIFAR.exists() else "synthetic"
    start = time.perf_counter()
    dataset = load_data(source, subset=None if SHARED_CIFAR.exists() else 6000)
    decoded = time.perf_counter() - start
    pictures = np.concatenate([dataset.x_train, dataset.x_test])
    labels = np.concatenate([dataset.y_train, dataset.y_test])
    print(f"source: {dataset.source}; {len(pictures):,} pictures")
    print(f"decoding the source once: {decoded:.1f} s")

    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / cifar.ARCHIVE
        write_official_layout(archive, pictures, labels)
        print(f"official layout: {archive.stat().st_size / 1e6:.0f} MB")
        for round_number in range(1, args.rounds + 1):
            start = time.perf_counter()
            cifar.sha256_of(archive)
            checked = time.perf_counter() - start
            batches = cifar._read_archive(archive)
            parts = [cifar.parse_batch(raw, name) for name, raw in batches.items()]
            total = time.perf_counter() - start
            count = sum(len(p[0]) for p in parts)
            print(
                f"round {round_number}: SHA-256 {checked:.2f} s, then reading {count:,} "
                f"pictures {total - checked:.2f} s: {total:.2f} s in all"
            )


if __name__ == "__main__":
    main()
