"""core.pixels.preprocess, spec, cache, pool and ``python -m core preprocess``: pixels, the cache, the batch filler."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from core.errors import ImageReadError
from core.pixels import cache as pc
from core.pixels import pool
from core.pixels import preprocess as pp
from core.pixels.cache import PreprocessCache, default_cache, load_preprocessed, load_preprocessed_with_box
from core.pixels.crop import CropBox
from core.pixels.image import to_uint8
from core.pixels.pool import preprocess_many
from core.pixels.preprocess import preprocess_array, to_display
from core.pixels.spec import PreprocessParams
from helpers import dicom_real

REPO = Path(__file__).resolve().parents[1]
P64 = PreprocessParams(size=64)


@pytest.fixture
def dicom_small(tmp_path) -> Path:
    """A private copy of a small DICOM, so its mtime can be changed."""
    return Path(shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "mr.dcm"))


def _forbid_decoding(monkeypatch) -> None:
    def refuse(path, *_):
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(pp, "render_uint8", refuse)


# --------------------------------------------------------------------------- pixels

def test_preprocess_array_is_square_uint8():
    pixels = np.random.default_rng(0).random((300, 200), dtype=np.float32)
    out = preprocess_array(pixels, PreprocessParams(size=96))
    assert out.dtype == np.uint8 and out.shape == (96, 96) and out.flags.c_contiguous


def test_clip_zero_disables_clahe_and_steps_are_8bit_then_stretch():
    pixels = np.linspace(0, 1, 120 * 80, dtype=np.float32).reshape(120, 80)
    out = preprocess_array(pixels, PreprocessParams(size=40, clahe_clip=0, crop=False,
                                                    chest_wall="as-is"))
    expected = cv2.resize(to_uint8(pixels), (40, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, preprocess_array(pixels, PreprocessParams(size=40, crop=False,
                                                                             chest_wall="as-is")))


def test_to_uint8_rounds_clips_and_zeroes_nan():
    out = to_uint8(np.array([[-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]]))
    assert out.tolist() == [[0, 0, 128, 255, 255, 0]]


@pytest.mark.parametrize("kwargs", [dict(size=0), dict(size=10_000), dict(size=64, clahe_clip=-1),
                                    dict(size=64, clahe_tiles=0), dict(size=64, fit="zoom")])
def test_params_are_validated(kwargs):
    with pytest.raises(ValueError):
        PreprocessParams(**kwargs)


def test_params_defaults_and_frozen():
    params = PreprocessParams(size=384)
    assert (params.clahe_clip, params.clahe_tiles, params.crop, params.fit) == (2.0, 8, True, "stretch")
    with pytest.raises(AttributeError):
        params.size = 5  # type: ignore[misc]


@pytest.mark.parametrize("name", ["MR_small.dcm", "JPEG2000.dcm", "SC_rgb.dcm",
                                  "MR_small_jp2klossless.dcm"])
def test_pydicom_files_preprocess(name):
    out = load_preprocessed(get_testdata_file(name), P64, cache=None)
    assert out.dtype == np.uint8 and out.shape == (64, 64) and out.max() > out.min()


def test_real_radiographs_tissue_bright():
    # RG3 (MONOCHROME1 lower leg): bone/soft tissue in the middle, air beside it.
    whole = PreprocessParams(size=384, crop=False)  # the whole frame: the checks are positions
    leg = load_preprocessed(dicom_real("RG3_UNCR.dcm"), whole, cache=None)
    assert leg.shape == (384, 384)
    assert leg[:, 170:230].mean() > leg[:, 105:130].mean() + 60
    # RG1 (MONOCHROME1 chest): the spine is brighter than the lung fields.
    chest = load_preprocessed(dicom_real("RG1_UNCR.dcm"), whole, cache=None)
    spine, lung = chest[100:250, 180:200].mean(), chest[100:200, 70:120].mean()
    assert spine > lung + 30


def test_to_display_keeps_aspect():
    out = to_display(get_testdata_file("JPEG2000.dcm"), 128)  # 1024 x 256 source
    assert out.shape == (128, 32) and out.dtype == np.uint8
    assert to_display(np.zeros((10, 40), np.float32), 80).shape == (20, 80)


# --------------------------------------------------------------------------- cache

def test_cache_hit_is_identical_and_never_decodes(tmp_path, dicom_small, monkeypatch):
    cache = PreprocessCache(tmp_path / "cache")
    first = load_preprocessed(dicom_small, P64, cache)
    _forbid_decoding(monkeypatch)
    again = load_preprocessed(dicom_small, P64, cache)
    assert again.tobytes() == first.tobytes() and again.dtype == np.uint8
    start = time.perf_counter()
    for _ in range(20):
        load_preprocessed(dicom_small, P64, cache)
    assert (time.perf_counter() - start) / 20 < 0.01  # ~1 ms; generous for slow CI


def test_cache_misses_on_new_mtime_or_params(tmp_path, dicom_small, monkeypatch):
    cache = PreprocessCache(tmp_path / "cache")
    load_preprocessed(dicom_small, P64, cache)
    _forbid_decoding(monkeypatch)
    with pytest.raises(AssertionError, match="decoded"):
        load_preprocessed(dicom_small, PreprocessParams(size=64, clahe_clip=3.0), cache)
    with pytest.raises(AssertionError, match="decoded"):
        load_preprocessed(dicom_small, PreprocessParams(size=32), cache)
    st = dicom_small.stat()
    os.utime(dicom_small, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(AssertionError, match="decoded"):
        load_preprocessed(dicom_small, P64, cache)


def test_cache_entries_are_plain_npy_and_writes_leave_no_temp(tmp_path, dicom_small):
    cache = PreprocessCache(tmp_path / "cache")
    arr, box = load_preprocessed_with_box(dicom_small, P64, cache)
    files = sorted((p for p in (tmp_path / "cache").rglob("*") if p.is_file()), key=lambda p: p.suffix)
    assert [f.suffix for f in files] == [".box", ".npy"]
    assert not any(f.name.startswith(".tmp") for f in files)
    np.testing.assert_array_equal(np.load(files[1], allow_pickle=False), arr)
    assert CropBox.from_array(np.frombuffer(files[0].read_bytes(), np.float64)) == box


def test_damaged_entry_is_a_miss_and_is_rewritten(tmp_path, dicom_small):
    cache = PreprocessCache(tmp_path / "cache")
    arr = load_preprocessed(dicom_small, P64, cache)
    entry = cache.entry(cache.key(dicom_small, P64))
    entry.write_bytes(b"\x93NUMPY garbage")
    assert cache.get(dicom_small, P64) is None
    np.testing.assert_array_equal(load_preprocessed(dicom_small, P64, cache), arr)
    np.testing.assert_array_equal(cache.get(dicom_small, P64)[0], arr)
    cache.box_entry(entry).write_bytes(b"short")  # a damaged box is a miss too
    assert cache.get(dicom_small, P64) is None


def test_unwritable_cache_still_returns_the_image(tmp_path, dicom_small):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    out = load_preprocessed(dicom_small, P64, PreprocessCache(blocker))
    assert out.shape == (64, 64)


def test_default_cache_follows_env_at_call_time(tmp_path, dicom_small, monkeypatch):
    monkeypatch.setenv(pc.CACHE_ENV, str(tmp_path / "envcache"))
    assert default_cache().root == tmp_path / "envcache"
    load_preprocessed(dicom_small, P64)  # default argument: the env cache
    assert list((tmp_path / "envcache").rglob("*.npy"))
    monkeypatch.delenv(pc.CACHE_ENV)
    assert default_cache().root == REPO / ".cache" / "preprocessed"


def test_missing_file_is_an_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        load_preprocessed(tmp_path / "nope.dcm", P64, PreprocessCache(tmp_path / "cache"))


# --------------------------------------------------------------------------- batch

def test_preprocess_many_fills_cache_and_collects_every_error(tmp_path, monkeypatch):
    sources = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "CT_small.dcm",
               "SC_rgb.dcm"]
    paths = [shutil.copy(get_testdata_file(n), tmp_path / n) for n in sources]
    (tmp_path / "bad.dcm").write_text("not a dicom")
    paths += [tmp_path / "bad.dcm", tmp_path / "missing.dcm"]
    cache = PreprocessCache(tmp_path / "cache")
    seen: list[tuple[int, int]] = []
    report = preprocess_many(paths, P64, workers=2, cache=cache,
                             progress=lambda d, t: seen.append((d, t)))
    assert (report.total, report.decoded, report.cached) == (7, 5, 0)
    assert sorted(Path(p).name for p, _ in report.errors) == ["bad.dcm", "missing.dcm"]
    assert all(msg.startswith(str(p)) for p, msg in report.errors)
    assert report.images_per_s > 0 and seen[-1] == (7, 7)
    _forbid_decoding(monkeypatch)
    for p in paths[:5]:
        assert load_preprocessed(p, P64, cache).shape == (64, 64)
    again = preprocess_many(paths, P64, workers=2, cache=cache)
    assert (again.decoded, again.cached, len(again.errors)) == (0, 5, 2)


# --------------------------------------------------------------------------- command line

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "preprocess", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_png_of_requested_size(tmp_path):
    out = tmp_path / "sub" / "out.png"
    done = _cli(get_testdata_file("MR_small.dcm"), "--size", "48", "--out", str(out),
                "--clahe-clip", "1.5", "--clahe-tiles", "4")
    assert done.returncode == 0, done.stderr
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.shape == (48, 48) and img.dtype == np.uint8
    expected = load_preprocessed(get_testdata_file("MR_small.dcm"),
                                 PreprocessParams(48, 1.5, 4), cache=None)
    np.testing.assert_array_equal(img, expected)


def test_cli_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"%PDF-1.4 not an image")
    done = _cli(str(bad), "--size", "48", "--out", str(tmp_path / "o.png"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), done.stderr
    assert not (tmp_path / "o.png").exists()


def test_pool_is_sized_from_the_cores_this_process_may_use(tmp_path, monkeypatch):
    sized: list[int] = []

    class Broken:
        def __init__(self, max_workers: int, **_kw):
            sized.append(max_workers)
            raise pool.BrokenProcessPool("not started in this test")

    monkeypatch.setattr(pool.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(pool, "ProcessPoolExecutor", Broken)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.random.default_rng(i).integers(0, 255, (40, 30), np.uint8))
    report = preprocess_many(paths, P64, cache=PreprocessCache(tmp_path / "cache"))
    assert sized == [2] and report.decoded == 4 and not report.errors


def test_a_stop_request_is_honoured_when_the_pool_breaks_and_in_this_process(tmp_path,
                                                                             monkeypatch):
    """A cancel's signal kills the pool's workers too: the files left are not decoded here."""
    class Broken:
        def __init__(self, **_kw):
            raise pool.BrokenProcessPool("workers killed by the cancel")

    monkeypatch.setattr(pool, "ProcessPoolExecutor", Broken)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.random.default_rng(i).integers(0, 255, (40, 30), np.uint8))
    cache = PreprocessCache(tmp_path / "cache")
    stopped = preprocess_many(paths, P64, workers=2, cache=cache, stop=lambda: True)
    assert stopped.stopped and stopped.decoded == 0 and not list(cache.root.rglob("*.npy"))
    asked: list[int] = []  # one worker: decoded here, asked before each file

    def after_two() -> bool:
        asked.append(1)
        return len(asked) > 2

    serial = preprocess_many(paths, P64, workers=1, cache=cache, stop=after_two)
    assert serial.stopped and (serial.decoded, serial.total) == (2, 4)
    rest = preprocess_many(paths, P64, workers=1, cache=cache)
    assert not rest.stopped and (rest.cached, rest.decoded) == (2, 2)
