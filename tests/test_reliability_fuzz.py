"""Fuzzing the readers: only the project's own errors (MammoError) may escape.

Valid DICOM, PNG, mask and manifest bytes are mutated by Hypothesis (bit flips,
byte overwrites, truncation, insertion, deletion, duplicated chunks) and fed to
``read_image`` / ``render_uint8`` / ``read_mask`` / ``read_manifest_csv``.
Each outcome is either a :class:`~core.errors.MammoError` naming the file in
one line, or a valid result: an image of the right dtype, finite and in range,
within the size limits and of the size its header gives; a binary mask of the
asked size; a manifest whose columns hold only allowed values.  Anything else
(a foreign exception, NaN pixels, a half-decoded array) is a bug.

The regular suite runs ``FUZZ_EXAMPLES`` = 60 examples per reader, derandomised;
the long run is ``FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_reliability_fuzz.py``
(random seeds).  Counts go to ``tests/artifacts/reliability-fuzz.json``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datasets.manifest import COLUMNS, LABELS, LATERALITIES, SPLITS, VIEW_POSITIONS, read_manifest_csv
from core.datasets.roi import read_mask
from core.errors import MammoError
from core.pixels.image import MammoImage
from core.pixels.limits import MAX_PIXELS, MAX_SIDE, MIN_SIDE
from core.pixels.read import read_image, render_uint8

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=list(HealthCheck), database=None)
TRIED: Counter = Counter()
OUTCOMES: Counter = Counter()


def _dicom_bytes(shape=(48, 40), bits=16, photometric="MONOCHROME2", **attrs) -> bytes:
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.ImageLaterality, ds.ViewPosition = "L", "CC"
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, 12, 11, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    rng = np.random.default_rng(0)
    dtype = np.uint16 if bits == 16 else np.uint8
    ds.PixelData = (rng.random(shape) * 4000).astype(dtype).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _dicom_sources() -> list[bytes]:
    out = [_dicom_bytes(),
           _dicom_bytes(photometric="MONOCHROME1", WindowCenter=2000, WindowWidth=3000,
                        RescaleSlope=1, RescaleIntercept=0, PixelPaddingValue=0)]
    try:
        from pydicom.data import get_testdata_file

        for name in ("MR_small.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
            path = get_testdata_file(name)
            if path:
                out.append(Path(path).read_bytes())
    except Exception:  # pydicom-data absent: the generated files still fuzz
        pass
    return out


def _png(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, data = cv2.imencode(ext, img)
    assert ok
    return data.tobytes()


def _picture_sources() -> list[bytes]:
    rng = np.random.default_rng(1)
    grey = (rng.random((40, 32)) * 200 + 20).astype(np.uint8)
    return [_png(grey), _png((rng.random((24, 24)) * 4000).astype(np.uint16)),
            _png(np.dstack([grey, grey, grey, np.full_like(grey, 255)])),
            _png(grey, ".jpg"), _png(grey, ".pgm"), _png(grey, ".bmp"), _png(grey, ".tif")]


def _mask_sources() -> list[bytes]:
    mask = np.zeros((40, 32), np.uint8)
    mask[10:20, 8:16] = 255
    return [_png(mask), _png(mask // 255), _png(np.dstack([mask] * 3)), _png(mask, ".pgm"),
            _png(mask, ".bmp"), _png(mask.astype(np.uint16) * 257)]


MANIFEST = ("image_path,patient_id,study_id,laterality,view,label,mask_path,split,extra\n"
            "a_RCC.png,P1,S1,R,CC,benign,,train,x\n"
            "a_LCC.png,P1,S1,L,CC,malignant,a_mask.png,train,\"q,\"\"uoted\"\"\"\n"
            "b_RMLO.png,P2,S2,R,MLO,benign,,test,\n")

SOURCES = {"dicom": _dicom_sources(), "picture": _picture_sources(), "mask": _mask_sources(),
           "manifest": [MANIFEST.encode(), ("\ufeff" + MANIFEST).encode(),
                        MANIFEST.replace("\n", "\r\n").encode()]}


@st.composite
def mutated(draw, kind: str) -> bytes:
    """One source file with 1-6 mutations: flip a bit, overwrite, truncate, insert, delete,
    duplicate a chunk; insertions draw from interesting bytes as well as random ones."""
    sources = SOURCES[kind]
    data = bytearray(sources[draw(st.integers(0, len(sources) - 1))])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "delete", "dup"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            chunk = draw(st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b",", b"\n", b'"', b"\x00", b"\xe9",
                 b"../../etc/passwd", b"\xff\xfe", b"NaN", b"-1"])))
            data[at:at] = chunk
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:at] = data[at:end]
    return bytes(data)


@pytest.fixture(scope="module")
def work():
    with tempfile.TemporaryDirectory(prefix="mammoroute-fuzz-") as tmp:
        root = Path(tmp)
        grey = (np.random.default_rng(2).random((40, 32)) * 200 + 20).astype(np.uint8)
        for name in ("a_RCC.png", "a_LCC.png", "b_RMLO.png"):
            cv2.imwrite(str(root / name), grey)
        mask = np.zeros((40, 32), np.uint8)
        mask[5:9, 5:9] = 255
        cv2.imwrite(str(root / "a_mask.png"), mask)
        yield root
    ARTIFACTS = REPO / "tests" / "artifacts"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "reliability-fuzz.json"
    data = json.loads(report.read_text()) if report.is_file() else {}
    entry = data.setdefault(f"FUZZ_EXAMPLES={EXAMPLES}", {"tried": {}, "outcomes": {}})
    entry["tried"].update(TRIED)  # per reader: the latest run of that reader
    entry["outcomes"].update({k: v for k, v in OUTCOMES.items()})
    report.write_text(json.dumps(data, indent=2))
    print(f"\nfuzz: tried {dict(TRIED)}; outcomes {dict(OUTCOMES)}")


def valid_float_image(im: MammoImage) -> None:
    """What :func:`read_image` promises: 2-D float32 in [0, 1], finite, at the file's size."""
    px = im.pixels
    assert isinstance(px, np.ndarray) and px.ndim == 2 and px.dtype == np.float32, (px.dtype, px.shape)
    assert np.isfinite(px).all() and px.min() >= 0.0 and px.max() <= 1.0
    assert tuple(px.shape) == tuple(im.source_shape)
    _within_limits(im.source_shape)


def valid_uint8_rendering(im: MammoImage, min_side: int) -> None:
    """What :func:`render_uint8` promises: 2-D uint8, the file's size shrunk by a power of two
    that keeps the shorter side at least ``min_side``."""
    px = im.pixels
    assert isinstance(px, np.ndarray) and px.ndim == 2 and px.dtype == np.uint8, (px.dtype, px.shape)
    _within_limits(im.source_shape)
    h, w = im.source_shape
    factors = [k for k in (1, 2, 4, 8, 16, 32, 64) if px.shape == (h // k, w // k)]
    assert factors and (factors[0] == 1 or min(px.shape) >= min_side), (px.shape, im.source_shape)


def _within_limits(shape) -> None:
    h, w = (int(v) for v in shape)
    assert MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE and h * w <= MAX_PIXELS


def valid_mask(mask: np.ndarray, shape: tuple[int, int]) -> None:
    assert mask.dtype == np.uint8 and mask.shape == shape and set(np.unique(mask)) <= {0, 1}


def valid_manifest(df) -> None:
    assert set(COLUMNS) <= set(df.columns) and len(df) > 0
    for column, allowed in (("label", LABELS), ("split", SPLITS), ("laterality", LATERALITIES),
                            ("view", VIEW_POSITIONS)):
        assert set(df[column]) <= set(allowed), (column, set(df[column]))


def _read_or_refused(reader, check, path: Path, name: str) -> None:
    """``reader(path)`` either refuses with the project's one-line error naming the file,
    or returns a result that passes ``check``."""
    TRIED[name] += 1
    try:
        result = reader(path)
    except MammoError as err:
        OUTCOMES[f"{name}: refused"] += 1
        message = str(err)
        assert str(path) in message and "\n" not in message and "Traceback" not in message
    else:
        check(result)
        OUTCOMES[f"{name}: read"] += 1


@FUZZ
@given(data=mutated("dicom"))
def test_fuzz_dicom(work, data):
    path = work / "fuzz.dcm"
    path.write_bytes(data)
    _read_or_refused(read_image, valid_float_image, path, "read_image(dicom)")
    _read_or_refused(lambda p: render_uint8(p, 16), lambda im: valid_uint8_rendering(im, 16), path,
                     "render_uint8(dicom)")


@FUZZ
@given(data=mutated("picture"), suffix=st.sampled_from([".png", ".jpg", ".dcm", ".tif"]))
def test_fuzz_picture(work, data, suffix):
    path = work / f"fuzz{suffix}"
    path.write_bytes(data)
    _read_or_refused(read_image, valid_float_image, path, "read_image(picture)")
    _read_or_refused(lambda p: render_uint8(p, 16), lambda im: valid_uint8_rendering(im, 16), path,
                     "render_uint8(picture)")


@FUZZ
@given(data=mutated("mask"))
def test_fuzz_mask(work, data):
    path = work / "fuzz_mask.png"
    path.write_bytes(data)
    _read_or_refused(lambda p: read_mask(p, expected_shape=(40, 32)),
                     lambda mask: valid_mask(mask, (40, 32)), path, "read_mask")


@FUZZ
@given(data=mutated("manifest"))
def test_fuzz_manifest(work, data):
    path = work / "fuzz_manifest.csv"
    path.write_bytes(data)
    _read_or_refused(read_manifest_csv, valid_manifest, path, "read_manifest_csv")


def test_sources_are_valid(work):
    """The unmutated sources read cleanly, so the fuzzing starts from valid files."""
    for i, data in enumerate(SOURCES["dicom"]):
        (work / f"ok{i}.dcm").write_bytes(data)
        valid_float_image(read_image(work / f"ok{i}.dcm"))
        valid_uint8_rendering(render_uint8(work / f"ok{i}.dcm", 16), 16)
    for i, data in enumerate(SOURCES["picture"]):
        (work / f"ok{i}.img").write_bytes(data)
        valid_float_image(read_image(work / f"ok{i}.img"))
        valid_uint8_rendering(render_uint8(work / f"ok{i}.img", 16), 16)
    for i, data in enumerate(SOURCES["mask"]):
        (work / f"ok{i}.mask").write_bytes(data)
        mask = read_mask(work / f"ok{i}.mask", expected_shape=(40, 32))
        valid_mask(mask, (40, 32))
        assert mask.sum() == 80
    for i, data in enumerate(SOURCES["manifest"]):
        (work / f"ok{i}.csv").write_bytes(data)
        df = read_manifest_csv(work / f"ok{i}.csv")
        valid_manifest(df)
        assert len(df) == 3


@pytest.mark.parametrize("broken", ["nan", "out of range", "wrong dtype", "half decoded"])
def test_the_checks_refuse_what_a_broken_reader_would_return(broken):
    """The outcome checks are real: each catches one way a reader could go wrong."""
    px = np.linspace(0, 1, 40 * 32, dtype=np.float32).reshape(40, 32)
    bad = {"nan": np.where(px > 0.5, np.nan, px).astype(np.float32), "out of range": px * 2,
           "wrong dtype": px.astype(np.float64), "half decoded": px[:20]}[broken]
    valid_float_image(MammoImage(px, (40, 32)))
    with pytest.raises(AssertionError):
        valid_float_image(MammoImage(bad, (40, 32)))
