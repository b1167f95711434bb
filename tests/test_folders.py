"""The picture-folder reader: strict layout, bounded memory, PNG and JPEG only, every failure named."""

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import run_memory_limited, write_image_folder
from vggcifar import data, folders
from vggcifar.data import load_data
from vggcifar.evaluation import PictureError, read_picture
from vggcifar.folders import MAX_DECODED_BYTES, MAX_FILE_BYTES, MAX_PIXELS, DataError

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def add_member(tar, name, payload=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(payload) if kind == tarfile.REGTYPE else 0, link
    tar.addfile(info, io.BytesIO(payload) if kind == tarfile.REGTYPE else None)


def png_bytes(pixels, mode=None):
    out = io.BytesIO()
    Image.fromarray(pixels, mode).save(out, format="PNG")
    return out.getvalue()


def small_archive(path, extra=()):
    """train/{a,b}/ with two tiny PNGs each, plus ``extra`` (name, payload, kind, link) members."""
    with tarfile.open(path, "w:gz") as tar:
        for label, value in (("a", 10), ("b", 200)):
            for i in range(2):
                add_member(tar, f"train/{label}/{i}.png", png_bytes(np.full((32, 32, 3), value, "uint8")))
        for member in extra:
            add_member(tar, *member)
    return path


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "train/../../evil.png"])
def test_names_that_point_outside_are_refused(tmp_path, name):
    archive = small_archive(tmp_path / "p.tar.gz", [(name, b"x")])
    with pytest.raises(DataError, match="points outside it; refused"):
        load_data(str(archive))


def test_nested_names_are_refused_not_merged(tmp_path):
    archive = small_archive(tmp_path / "p.tar.gz", [("train/a/old/test/a/3.png", b"x")])
    with pytest.raises(DataError, match="nested too deep"):
        load_data(str(archive))
    root = write_image_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}})
    (root / "train" / "a" / "copy").mkdir()
    with pytest.raises(DataError, match=r"'train/a/copy' .* nested too deep"):
        load_data(str(root))


def test_links_other_formats_and_stray_files_are_skipped_and_reported(tmp_path):
    archive = small_archive(
        tmp_path / "p.tar.gz",
        [
            ("train/a/link.png", b"", tarfile.SYMTYPE, "/etc/passwd"),
            ("train/b/photo.bmp", b"BM"),
            ("README.txt", b"hello"),
        ],
    )
    dataset = load_data(str(archive))
    assert dataset.x_train.shape[0] + dataset.x_test.shape[0] == 4
    note = dataset.notes[0]
    assert note.startswith("3 entries were skipped")
    assert "train/a/link.png (a link)" in note and "train/b/photo.bmp (not a .png or .jpg file)" in note


def test_a_class_without_usable_pictures_is_named(tmp_path):
    root = write_image_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}})
    (root / "train" / "empty").mkdir()
    bmp = root / "train" / "bitmaps"
    bmp.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), "uint8")).save(bmp / "0.bmp")
    with pytest.raises(
        DataError,
        match=r"class folder\(s\) \['train/bitmaps', 'train/empty'\] .* hold no "
        r"PNG or JPEG picture; skipped: train/bitmaps/0.bmp",
    ):
        load_data(str(root))


def test_a_pipe_named_like_a_picture_is_skipped_not_read(tmp_path):
    root = write_image_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}})
    os.mkfifo(root / "train" / "a" / "x.png")  # reading it would wait for ever
    dataset = load_data(str(root))
    assert "train/a/x.png (not a regular file)" in dataset.notes[0]


def test_an_eps_file_named_png_is_not_decoded(tmp_path):
    root = write_image_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}})
    (root / "train" / "a" / "x.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n")
    with pytest.raises(DataError, match=r"cannot read picture 'train/a/x.png' as PNG or JPEG"):
        load_data(str(root))


def test_sixteen_bit_pictures_are_scaled_not_clipped(tmp_path):
    root = write_image_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}})
    grey = np.full((32, 32), 30000, dtype=np.uint16)  # 46% grey in 16 bits
    Image.fromarray(grey).save(root / "train" / "a" / "deep.png")
    dataset = load_data(str(root))
    everything = np.concatenate([dataset.x_train, dataset.x_test])
    assert any((p == 30000 >> 8).all() for p in everything)  # 117, not 255


def test_a_one_picture_class_cannot_give_a_test_picture_and_train(tmp_path):
    root = write_image_folder(tmp_path / "f", {"train": {"a": 1, "b": 3}})
    with pytest.raises(DataError, match=r"class 'a' has only 1 picture\(s\).*as the test split"):
        load_data(str(root))


BOUNDED = textwrap.dedent("""
    import json, sys
    from vggcifar.data import DataError, load_data
    from vggcifar.evaluation import PictureError, read_picture
    def peak():  # this program's high-water mark; ru_maxrss would count pytest's from before exec
        return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    before = peak()
    out = {}
    for name, call in (("archive", lambda: load_data(sys.argv[1])),
                       ("folder", lambda: load_data(sys.argv[2])),
                       ("photo", lambda: read_picture(sys.argv[3]))):
        try:
            call()
            out[name] = "read"
        except (DataError, PictureError) as error:
            out[name] = str(error)
    out["peak_growth_mb"] = (peak() - before) / 1024
    print("RESULT", json.dumps(out))
""")


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read in chunks: a huge member without holding it in memory."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_huge_members_and_pictures_are_refused_in_bounded_memory(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("the peak memory is read from /proc/self/status, which only Linux has")
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("train/a/huge.png")
        info.size = 400 * 2**20
        tar.addfile(info, Zeros(info.size))
    assert archive.stat().st_size < 3 * 2**20  # 400 MB in a small archive
    folder = write_image_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}})
    big = Image.new("1", (10_000, 10_000))  # 1 bit per pixel: 100 megapixels in a small PNG
    big.save(folder / "train" / "a" / "huge.png")
    big.save(tmp_path / "photo.png")
    assert (tmp_path / "photo.png").stat().st_size < MAX_FILE_BYTES
    result = subprocess.run(
        [sys.executable, "-c", BOUNDED, str(archive), str(folder), str(tmp_path / "photo.png")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ")[1])
    print("peak memory growth while refusing the huge inputs:", out["peak_growth_mb"], "MB")
    assert f"is {400 * 2**20:,} bytes, more than the {MAX_FILE_BYTES:,}" in out["archive"]
    assert f"is 10000x10000 pixels, more than the {MAX_PIXELS:,} allowed" in out["folder"]
    assert "is 10000x10000 pixels, more than the 50,000,000 allowed" in out["photo"]
    assert out["peak_growth_mb"] < 64, out


def test_own_picture_formats_are_limited_too(tmp_path):
    eps = tmp_path / "x.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n")
    with pytest.raises(PictureError, match="could not be read as a picture"):
        read_picture(eps)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((64, 64), 65535, dtype=np.uint16)).save(deep)
    assert (read_picture(deep) == 255).all()


def test_many_small_files_cannot_add_up_to_more_than_the_memory(tmp_path):
    """A ~30 KB archive (and a folder) of 400 identical 1024x1024 PNGs would decode to 1.26 GB:
    refused by the total before any picture is decoded, in a process capped at 1 GiB."""
    black = png_bytes(np.zeros((1024, 1024, 3), "uint8"))
    archive = tmp_path / "many.tar.gz"
    folder = tmp_path / "many"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(400):
            add_member(tar, f"train/{'ab'[i % 2]}/{i}.png", black)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    assert archive.stat().st_size < 64_000, archive.stat().st_size
    for source in (archive, folder):
        out = run_memory_limited(
            "from vggcifar.data import load_data; load_data(sys.argv[3])", source, limit=2**30
        )
        print(f"{source.name}: peak RSS {out['peak_rss_mb']:.0f} MB")
        assert out.get("error") == "DataError", out
        assert out["message"].startswith(
            f"data: the pictures in {str(source)!r} would take more than {MAX_DECODED_BYTES:,} "
            "bytes decoded (MAX_DECODED_BYTES"
        ), out
        assert "refused before decoding any" in out["message"] and out["peak_rss_mb"] < 200, out


def test_the_numbers_of_pictures_and_entries_are_bounded(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "f", {"train": {"a": 3, "b": 3}})
    monkeypatch.setattr(folders, "MAX_PICTURES", 5)
    with pytest.raises(DataError, match=r"holds more than 5 pictures, the most allowed \(MAX_PICTURES"):
        load_data(str(root))
    monkeypatch.setattr(folders, "MAX_PICTURES", 6)
    assert load_data(str(root)).x_train.shape[0] == 4  # 6 pictures, 2 held out
    archive = small_archive(tmp_path / "p.tar.gz", [(f"notes{i}.txt", b"x") for i in range(10)])
    monkeypatch.setattr(folders, "MAX_ENTRIES", 9)
    with pytest.raises(DataError, match=r"p.tar.gz' holds more than 9 entries .* \(MAX_ENTRIES"):
        load_data(str(archive))


def cut_points(raw, count):
    return sorted({int(n) for n in np.linspace(0, len(raw) - 1, count)})


def test_every_cut_point_of_an_archive_gives_the_named_error(tmp_path):
    archive = small_archive(
        tmp_path / "p.tar.gz",
        [
            (f"test/{c}/{i}.png", png_bytes(np.full((32, 32, 3), 7 * i, "uint8")))
            for c in "ab"
            for i in range(3)
        ],
    )
    raw = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    for length in cut_points(raw, 20):
        cut.write_bytes(raw[:length])
        with pytest.raises(DataError, match=r"data: (the archive|cannot open the archive) '.*cut.tar.gz'"):
            load_data(str(cut))


def test_every_cut_point_of_the_shipped_sample_gives_the_named_error(tmp_path, monkeypatch):
    """A cut copy of the shipped sample (the shipped file is only read): as a path it goes
    through the general reader, as data='sample' through the fast one, which checks the
    SHA-256 first."""
    raw = data.sample_file().read_bytes()
    cut = tmp_path / "sample-cut.tar.gz"
    for length in cut_points(raw, 6)[1:]:
        cut.write_bytes(raw[:length])
        with pytest.raises(
            DataError, match=r"data: the archive '.*sample-cut.tar.gz' is damaged or cut short"
        ):
            load_data(str(cut))
    monkeypatch.setattr(data, "sample_file", lambda: cut)
    monkeypatch.setattr(data, "_SAMPLE_ARRAYS", {})
    with pytest.raises(DataError, match=r"data='sample': the CIFAR-10 sample .* is damaged or altered"):
        load_data("sample")


def test_float_and_32_bit_pictures_are_scaled_not_blackened(tmp_path):
    """A 32-bit float TIFF (0-1, as scientific software writes it) used to come out all black."""
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    cases = {
        "unit.tif": (ramp, ramp),  # 0-1: times 255
        "wide.tif": (ramp * 4000 - 1000, ramp),  # another range: stretched from min to max
        "int32.tif": ((ramp * 2**20).astype(np.int32), ramp),  # beyond 16 bits: from min to max
    }
    for name, (pixels, expected) in cases.items():
        Image.fromarray(pixels).save(tmp_path / name)
        got = read_picture(tmp_path / name, size=(64, 64))
        assert got.shape == (64, 64, 3) and (got[..., 0] == got[..., 2]).all()
        np.testing.assert_allclose(got[..., 0], np.round(expected * 255), atol=1.5, err_msg=name)
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(PictureError, match="has NaN or infinite pixels"):
        read_picture(tmp_path / "nan.tif")


def test_an_unsupported_pixel_mode_is_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"pixel mode 'La' is not supported; allowed: 1, L, LA, P,"):
        folders.to_rgb(Image.new("La", (4, 4)))
