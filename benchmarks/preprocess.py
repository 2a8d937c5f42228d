"""Preprocessing cost on full-field 16-bit DICOMs, the cache, and the CLAHE shortcut.

Why: decoding a 13.6 MP mammogram is the irreducible part; everything
core.pixels.read and core.pixels.preprocess add on top (modality/VOI maths, windowing,
8-bit, resize, CLAHE) should stay small beside it (issue 6: ``ratio =
full / decode_only ≤ 1.5``; ``full`` is ``core.pixels.preprocess.preprocess_file``,
the path training and review both take), a cache hit must be cheap (< 2 ms) because
training and review read the cache all the time, and ``preprocess_many``
should scale with workers.

It also checks the two shortcuts that make this possible against the
slow, exact way, in mean absolute grey levels beside the tolerance stated
for each: CLAHE on the reduced image instead of the full-field one
(``CLAHE_TOLERANCE``), and windowing after a power-of-two block average
instead of before (``core.pixels.read.RENDER_TOLERANCE``; ``float_path_ms`` is
the time of the exact way: float32 windowing of every pixel, then resize).

The DICOMs are synthetic (a phantom view rendered at the requested size),
written uncompressed, alternating MONOCHROME1 and MONOCHROME2; ``--j2k``
adds a JPEG 2000 lossless copy when an encoder is installed.

    python -m benchmarks.preprocess --json
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import base_parser, emit, median, rounded, temp_dir, time_call

ROWS, COLS = 4084, 3328  # a typical full-field digital mammogram
CLAHE_TOLERANCE = 8.0  # mean |Δ| grey levels (of 255) we accept for CLAHE on the reduced image


def synthetic_view(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A phantom mammogram (float 0..1, 0 = air) of ``rows`` × ``cols``."""
    from core.phantom import render_view

    img, _ = render_view(np.random.default_rng(seed), "LCC", size=rows, aspect=cols / rows)
    if img.shape != (rows, cols):
        img = cv2.resize(img, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def write_dicom(path: Path, img: np.ndarray, mono1: bool, bits: int = 16,
                j2k: bool = False) -> Path:
    """A For-Presentation mammogram DICOM of ``img`` with a window in the header."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    maxv = (1 << bits) - 1
    stored = np.round(img * maxv * 0.9 + maxv * 0.05)
    if mono1:
        stored = maxv - stored
    stored = stored.astype(np.uint16)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    fm.MediaStorageSOPInstanceUID = generate_uid()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "MG", "PHANTOM^BENCH", "BENCH"
    ds.ImageLaterality, ds.ViewPosition = "L", "CC"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.WindowCenter, ds.WindowWidth = round(maxv / 2, 1), round(maxv * 0.9, 1)
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    if j2k:
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.save_as(path, enforce_file_format=True)
    return path


def decode_ms(path: Path, repeats: int) -> float:
    """Median ms of pydicom's read + ``pixel_array`` alone (the floor)."""
    import pydicom

    return median(time_call(lambda: pydicom.dcmread(path).pixel_array, repeats))


def render_vs_exact(path: Path, size: int) -> dict[str, float]:
    """MAD (grey levels) between the fast model input and the exact way (window every
    pixel in float32, 8 bits, then resize and CLAHE), the latter's time included."""
    from core.pixels.preprocess import preprocess_array, preprocess_file
    from core.pixels.read import read_image
    from core.pixels.spec import PreprocessParams

    params = PreprocessParams(size)
    t0 = time.perf_counter()
    exact = preprocess_array(read_image(path).pixels, params)
    t1 = time.perf_counter()
    fast, _ = preprocess_file(path, params)
    return {"render_vs_exact_mad": float(np.abs(fast.astype(np.int16) - exact).mean()),
            "float_path_ms": (t1 - t0) * 1000}


def clahe_reduced_vs_full(pixels: np.ndarray, size: int, clip: float = 2.0, tiles: int = 8
                          ) -> dict[str, float]:
    """MAD (grey levels) between CLAHE-then-resize on the full image and core's
    resize-then-CLAHE, with the time of each."""
    from core.pixels.image import to_uint8
    from core.pixels.preprocess import preprocess_array
    from core.pixels.spec import PreprocessParams

    params = PreprocessParams(size, clip, tiles)
    t0 = time.perf_counter()
    reduced = preprocess_array(pixels, params)
    t1 = time.perf_counter()
    full8 = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(to_uint8(pixels))
    full = cv2.resize(full8, (size, size), interpolation=cv2.INTER_AREA)
    t2 = time.perf_counter()
    return {"clahe_reduced_vs_full_mad": float(np.abs(reduced.astype(np.int16) - full).mean()),
            "clahe_reduced_ms": (t1 - t0) * 1000, "clahe_full_ms": (t2 - t1) * 1000}


def pool_paths(paths: list[Path], count: int, folder: Path) -> list[Path]:
    """``count`` distinct paths over the same few files (hard links: each is its own
    cache entry, no extra disk), so the pool's start-up is spread over a dataset-like
    number of images rather than a handful."""
    folder.mkdir()
    out = []
    for i in range(max(count, len(paths))):
        link = folder / f"img{i:04d}.dcm"
        try:
            link.hardlink_to(paths[i % len(paths)])
        except OSError:  # a file system without hard links: copy instead
            link.write_bytes(paths[i % len(paths)].read_bytes())
        out.append(link)
    return out


def pool_rate(paths: list[Path], size: int, workers: int, cache_root: Path) -> float:
    """Images/s of ``preprocess_many`` filling an empty cache with ``workers`` processes
    (pool start-up included: that is what a user waits for)."""
    from core.pixels.cache import PreprocessCache
    from core.pixels.pool import preprocess_many
    from core.pixels.spec import PreprocessParams

    report = preprocess_many([str(p) for p in paths], PreprocessParams(size), workers=workers,
                             cache=PreprocessCache(cache_root))
    if report.errors:
        raise RuntimeError(f"preprocess errors: {report.errors[:2]}")
    return report.images_per_s


def measure(n: int, rows: int, cols: int, size: int, repeats: int, j2k: bool,
            pool_files: int) -> dict[str, Any]:
    from core.pixels.cache import PreprocessCache, load_preprocessed
    from core.pixels.preprocess import preprocess_file
    from core.pixels.read import RENDER_TOLERANCE, read_image
    from core.pixels.spec import PreprocessParams

    params = PreprocessParams(size)
    img = synthetic_view(rows, cols)
    out: dict[str, Any] = {"rows": rows, "cols": cols, "size": size, "n": n}
    with temp_dir() as tmp:
        paths = [write_dicom(tmp / f"img{i}.dcm", img, mono1=bool(i % 2)) for i in range(max(n, 1))]
        decode = [decode_ms(p, repeats) for p in paths]
        read = [median(time_call(lambda p=p: read_image(p), repeats)) for p in paths]
        full = [median(time_call(lambda p=p: preprocess_file(p, params), repeats))
                for p in paths]
        cache = PreprocessCache(tmp / "cache-hit")
        load_preprocessed(paths[0], params, cache)
        hit = median(time_call(lambda: load_preprocessed(paths[0], params, cache), 50))
        out.update(decode_ms=median(decode), read_image_ms=median(read), full_ms=median(full))
        out["ratio"] = out["full_ms"] / out["decode_ms"]
        out["cache_hit_ms"] = hit
        pool = pool_paths(paths, pool_files, tmp / "pool")
        out["pool_files"] = len(pool)
        out["workers_1_img_s"] = pool_rate(pool, size, 1, tmp / "cache-w1")
        out["workers_2_img_s"] = pool_rate(pool, size, 2, tmp / "cache-w2")
        out.update(clahe_reduced_vs_full(read_image(paths[0]).pixels, size))
        out["clahe_tolerance_mad"] = CLAHE_TOLERANCE
        out["clahe_within_tolerance"] = out["clahe_reduced_vs_full_mad"] <= CLAHE_TOLERANCE
        out.update(render_vs_exact(paths[0], size))
        out["render_tolerance_mad"] = RENDER_TOLERANCE
        out["render_within_tolerance"] = out["render_vs_exact_mad"] <= RENDER_TOLERANCE
        if j2k:
            out.update(_j2k(tmp, img, params, repeats))
    return {k: (rounded(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def _j2k(tmp: Path, img: np.ndarray, params, repeats: int) -> dict[str, Any]:
    """JPEG 2000 lossless decode vs full path, or why it was skipped."""
    from core.pixels.preprocess import preprocess_file

    try:
        path = write_dicom(tmp / "j2k.dcm", img, mono1=False, j2k=True)
    except Exception as err:  # no encoder plugin: say so rather than fail the benchmark
        return {"j2k_note": f"JPEG 2000 not measured: {type(err).__name__}: {err}"}
    d = decode_ms(path, repeats)
    f = median(time_call(lambda: preprocess_file(path, params), repeats))
    return {"j2k_decode_ms": d, "j2k_full_ms": f, "j2k_ratio": f / d}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser("DICOM decode vs full preprocess, cache hit, worker scaling, CLAHE check")
    parser.add_argument("--n", type=int, default=4, help="DICOM files (alternating MONOCHROME1/2)")
    parser.add_argument("--side", type=int, default=ROWS,
                        help=f"rows of each DICOM (columns keep {COLS}/{ROWS}); small for tests")
    parser.add_argument("--size", type=int, default=384, help="model input side")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per file (median)")
    parser.add_argument("--j2k", action="store_true", help="also time a JPEG 2000 lossless file")
    parser.add_argument("--pool-files", type=int, default=48,
                        help="images preprocess_many fills the cache with, per worker count")
    args = parser.parse_args(argv)
    cols = max(8, round(args.side * COLS / ROWS))
    result = measure(max(1, args.n), args.side, cols, args.size, max(1, args.repeats), args.j2k,
                     max(1, args.pool_files))
    text = (f"{args.side}x{cols} 16-bit DICOM → {args.size}px: decode {result['decode_ms']:.0f} ms, "
            f"full {result['full_ms']:.0f} ms (ratio {result['ratio']:.2f}), cache hit "
            f"{result['cache_hit_ms']:.2f} ms, preprocess_many {result['workers_1_img_s']:.2f} / "
            f"{result['workers_2_img_s']:.2f} img/s (1/2 workers), CLAHE reduced vs full MAD "
            f"{result['clahe_reduced_vs_full_mad']:.2f} grey levels (tolerance {CLAHE_TOLERANCE:g}), "
            f"fast vs exact windowing MAD {result['render_vs_exact_mad']:.2f} (tolerance "
            f"{result['render_tolerance_mad']:g}; exact way {result['float_path_ms']:.0f} ms)")
    emit(result, args.json, text)
    return result


if __name__ == "__main__":
    main()
