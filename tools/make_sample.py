"""Build the CIFAR-10 sample that ships inside the package (``data="sample"``).

    python tools/make_sample.py                      # from ../shared/datasets/, checks both sha256
    python tools/make_sample.py --check              # rebuild in memory; fail unless byte-identical

It reads the JPEG copy of the 50,000 CIFAR-10 *training* pictures
(``cifar10-jpeg-train.tar.gz``, checked against its sha256), draws
:data:`TRAIN_PER_CLASS` + :data:`TEST_PER_CLASS` pictures of every class with a fixed
seed, and writes them, byte for byte as they were, to
``vggcifar/resources/cifar10-sample.tar.gz`` laid out as ``train/<class>/<name>.jpg`` and
``test/<class>/<name>.jpg``. Both splits come from CIFAR-10's training pictures and
are disjoint: the sample's "test" pictures are training pictures of CIFAR-10, never
seen by a model trained on the sample. The archive is reproducible (sorted members,
fixed times and owners, gzip without a time stamp): the same input gives the same
sha256, which is recorded in :data:`vggcifar.data.SAMPLE_SHA256`.

CIFAR-10: Alex Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009,
https://www.cs.toronto.edu/~kriz/cifar.html
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import numpy as np

from vggcifar.data import SAMPLE_RESOURCE, SAMPLE_SHA256

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"
SOURCE_SHA256 = "14c431c02e5d0a78e9c79e7de2ca518885e29b45af37ff4546ac46bbe0c744b0"
TARGET = ROOT / "vggcifar" / SAMPLE_RESOURCE
TRAIN_PER_CLASS, TEST_PER_CLASS, SEED = 400, 100, 0
MAX_BYTES = 3_000_000


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_source(path):
    """``{class: {name: jpeg bytes}}`` of the shared archive, after checking its sha256."""
    raw = Path(path).read_bytes()
    if sha256(raw) != SOURCE_SHA256:
        sys.exit(f"{path}: sha256 {sha256(raw)} is not the expected {SOURCE_SHA256}")
    by_class = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] == "train":
                by_class.setdefault(parts[1], {})[parts[2]] = archive.extractfile(member).read()
    return by_class


def build(by_class):
    """The sample's ``.tar.gz`` bytes: a seeded, stratified draw, test and train disjoint."""
    rng = np.random.default_rng(SEED)
    members = []
    for name in sorted(by_class):
        files = sorted(by_class[name])
        chosen = rng.choice(len(files), TRAIN_PER_CLASS + TEST_PER_CLASS, replace=False)
        for split, picks in (("test", chosen[:TEST_PER_CLASS]), ("train", chosen[TEST_PER_CLASS:])):
            members += [(f"{split}/{name}/{files[i]}", by_class[name][files[i]]) for i in sorted(picks)]
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for member_name, data in sorted(members):
            info = tarfile.TarInfo(member_name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(packed.getvalue(), compresslevel=9, mtime=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=str(SOURCE), help="the shared cifar10-jpeg-train.tar.gz")
    parser.add_argument(
        "--check", action="store_true", help="fail unless the shipped sample is rebuilt exactly"
    )
    args = parser.parse_args(argv)
    sample = build(read_source(args.source))
    if len(sample) > MAX_BYTES:
        sys.exit(f"the sample is {len(sample):,} bytes, over the {MAX_BYTES:,} allowed")
    recorded = "the one recorded in vggcifar.data.SAMPLE_SHA256"
    if args.check:
        shipped = TARGET.read_bytes()
        if shipped != sample:
            sys.exit(f"{TARGET} differs from a rebuild: run python tools/make_sample.py")
        if sha256(sample) != SAMPLE_SHA256:
            sys.exit(f"the rebuild's sha256 {sha256(sample)} is not {recorded} ({SAMPLE_SHA256})")
        print(f"{TARGET.name}: rebuilt byte for byte ({len(sample):,} bytes), sha256 {sha256(sample)}")
        print(f"which is {recorded}")
        return 0
    TARGET.write_bytes(sample)
    print(f"wrote {TARGET} ({len(sample):,} bytes), sha256 {sha256(sample)}")
    if sha256(sample) != SAMPLE_SHA256:
        print(
            f"that is not {recorded} ({SAMPLE_SHA256}): set it there, or load_data('sample') refuses the file"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
