"""Bad input at every door a user has: the command line and the case-review upload.

One table of bad (and awkward-but-valid) mammograms, one of masks, one of
manifests.  Each row goes through the user-facing entry points:

* ``python -m core preprocess`` and ``python -m core predict`` (in-process via
  ``core.__main__.main``), alone and as one view of a four-view study;
* the case-review upload path (``core.review.case.read_upload`` / ``read_mask_upload``,
  what ``pages/case_review.py`` calls) followed by the Predictor;
* ``python -m core data describe`` for manifests; ``resolve_dataset_path`` (what
  the Train and Data pages call) for dataset paths typed in the browser;
* one AppTest of the case-review page with one broken view of four.

Every refusal must be one line naming the file and the problem, with no
traceback and a non-zero exit; a study with one bad view still shows the
other views.  The number of inputs tried goes to
``tests/artifacts/reliability-inputs.json``.
"""
from __future__ import annotations

import io
import json
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from core.errors import ManifestError, MaskError
from core.grid import plan
from core.models import create_model, save_weights
from core.pixels.spec import PreprocessParams
from helpers import case_review_upload, write_meta

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
IMG = 64
SPEC = PreprocessParams(IMG, crop=False)  # the spec the hand-made run stores
TRIED: Counter = Counter()


# --------------------------------------------------------------------------- file makers

def dicom_bytes(shape=(96, 80), laterality="R", position="CC", pixels: bool = True,
                frames: int = 1, rgb: bool = False, syntax: str | None = None,
                pixel_bytes: bytes | None = None, rows_cols: tuple[int, int] | None = None,
                **attrs) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.ImageLaterality, ds.ViewPosition = laterality, position
    ds.Rows, ds.Columns = rows_cols or shape
    rng = np.random.default_rng(1)
    if rgb:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        arr = (rng.random((*shape, 3)) * 255).astype(np.uint8)
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        arr = (rng.random((frames, *shape)) * 4000).astype(np.uint16)
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in attrs.items():
        setattr(ds, key, value)
    if pixels:
        if syntax:
            ds.PixelData = encapsulate([b"\0" * 64])
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = pixel_bytes if pixel_bytes is not None else arr.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, data = cv2.imencode(ext, img)
    assert ok
    return data.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR (valid CRC) claims ``width`` x ``height``."""
    raw = bytearray(encode(np.zeros((16, 16), np.uint8)))
    ihdr = bytearray(raw[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(raw)


def mammo(seed: int = 0, shape=(96, 80)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 200 + 20).astype(np.uint8)


def _nan_tiff() -> bytes:
    return encode(np.full((32, 32), np.nan, np.float32), ".tif")


# name -> (bytes or None for "no such file" / "folder", expected words; None = accepted)
IMAGES: dict[str, tuple] = {
    "truncated.dcm": (lambda: dicom_bytes()[:3000], "truncated"),
    "empty.dcm": (lambda: b"", "empty file (0 bytes)"),
    "notes.dcm": (lambda: b"Patient notes, not an image\n" * 20, "looks like a text file"),
    "report.dcm": (lambda: b"%PDF-1.4\n" + bytes(600), "looks like a PDF document"),
    "nopixels.dcm": (lambda: dicom_bytes(pixels=False), "no pixel data"),
    "multiframe.dcm": (lambda: dicom_bytes(frames=3), "multi-frame"),
    "mpeg2.dcm": (lambda: dicom_bytes(syntax="1.2.840.10008.1.2.4.100"), "no decoder for transfer syntax"),
    "bomb.dcm": (lambda: dicom_bytes(rows_cols=(20000, 20000), pixel_bytes=bytes(64)), "megapixel limit"),
    "pixel.png": (lambda: encode(np.zeros((1, 1), np.uint8)), "too small"),
    "wide.png": (lambda: png_claiming(100_000, 16), "exceeds the 80 megapixel limit"),
    "bomb.png": (lambda: png_claiming(12_000, 8_000), "megapixel limit"),
    "nan.tif": (_nan_tiff, "not a number"),
    "constant.png": (lambda: encode(np.full((64, 64), 9, np.uint8)), "constant image"),
    "garbage.png": (lambda: b"\x01\x02 not a png" * 30, "not an image"),
    "missing.dcm": (None, "file not found"),
    "folder.dcm": ("folder", "is a folder"),
    # awkward but valid: must be accepted
    "colour_RCC.dcm": (lambda: dicom_bytes(rgb=True), None),
    "sixteen_RCC.png": (lambda: encode((np.random.default_rng(3).random((96, 80)) * 4000)
                                       .astype(np.uint16)), None),
    "rgba_RCC.png": (lambda: encode(np.dstack([mammo(4)] * 3 + [np.full((96, 80), 255, np.uint8)])),
                     None),
    "mono1_RCC.dcm": (lambda: dicom_bytes(PhotometricInterpretation="MONOCHROME1",
                                          WindowCenter=2000, WindowWidth=3000), None),
}


def materialise(folder: Path, name: str) -> Path:
    path = folder / name
    maker = IMAGES[name][0]
    if maker == "folder":
        path.mkdir(exist_ok=True)
    elif maker is not None:
        path.write_bytes(maker())
    return path


# --------------------------------------------------------------------------- fixtures

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", autouse=True)
def record_counts():
    """Write how many input × entry-point cases were tried, for the README's figures."""
    yield
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "reliability-inputs.json").write_text(json.dumps(
        {"total": sum(TRIED.values()), "by_entry_point": dict(TRIED)}, indent=2))
    print(f"\nbad-input reliability: {sum(TRIED.values())} input×entry-point cases: {dict(TRIED)}")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inputs")


def write_run(root: Path, modes=("baseline", "roi")) -> Path:
    """A run folder with one untrained ConvNeXtV2-atto in every cell (real hashes)."""
    src = root.parent / "w.safetensors"
    sha = save_weights(create_model("convnextv2_atto", IMG), src)
    blob = src.read_bytes()
    cells = {}
    for mode in modes:
        for cell in plan(mode):
            (root / cell.name).mkdir(parents=True)
            (root / cell.name / "weights.safetensors").write_bytes(blob)
            cells[cell.name] = {"status": "done", "sha256": sha,
                                "meta_sha256": write_meta(root / cell.name, {"threshold": 0.5})}
    (root / "run.json").write_text(json.dumps({
        "name": root.name, "arch": "convnextv2_atto", "img_size": IMG, "modes": list(modes),
        "preprocess": SPEC.to_json(),
        "status": "complete", "cells": cells, "synthetic": True, "epochs": 1,
        "started": "2026-01-01T00:00:00+00:00"}))
    return root


@pytest.fixture(scope="module")
def run_dir(work) -> Path:
    return write_run(work / "run")


@pytest.fixture(scope="module")
def predictor(run_dir):
    from core.predict import Predictor

    return Predictor(run_dir)


@pytest.fixture
def cli(predictor, monkeypatch, capsys):
    """``python -m core ...`` in-process, with the (real) Predictor loaded once."""
    import core.predict
    from core.__main__ import main

    monkeypatch.setattr(core.predict, "Predictor", lambda run_dir, device="auto": predictor)

    def call(*argv: str) -> tuple[int, str, str]:
        rc = main([str(a) for a in argv])
        out = capsys.readouterr()
        return rc, out.out, out.err
    return call


@pytest.fixture(scope="module")
def good(work) -> dict[str, Path]:
    """Three good views (LCC, RMLO, LMLO) to complete a study around a bad RCC."""
    out = {}
    for i, view in enumerate(("LCC", "RMLO", "LMLO")):
        path = work / f"good_{view}.png"
        cv2.imwrite(str(path), mammo(10 + i))
        out[view] = path
    return out


def one_line_error(rc: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert rc != 0, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# --------------------------------------------------------------------------- images

@pytest.mark.parametrize("name", list(IMAGES))
def test_bad_image_on_the_command_line(name, work, cli, good):
    folder = work / "cli"
    folder.mkdir(exist_ok=True)
    path = materialise(folder, name)
    words = IMAGES[name][1]

    rc, out, err = cli("preprocess", path, "--size", "32", "--out", folder / f"{name}.out.png")
    TRIED["cli preprocess"] += 1
    if words is None:
        assert rc == 0, err
    else:
        one_line_error(rc, err, str(path), words)
        assert not (folder / f"{name}.out.png").exists()

    rc, out, err = cli("predict", run_dir_of(cli), path, "--device", "cpu")
    TRIED["cli predict (alone)"] += 1
    if words is None:
        assert rc == 0 and "RCC" in out, err
    else:
        one_line_error(rc, err, "nothing could be predicted", str(path), words)

    rc, out, err = cli("predict", run_dir_of(cli), path, *good.values(), "--device", "cpu")
    TRIED["cli predict (one view of four)"] += 1
    assert rc == 0 and "Traceback" not in out + err, err
    rows = [line for line in out.splitlines() if line.startswith("good_")]
    assert len(rows) == 3 and all("(benign" in r or "(malignant" in r for r in rows), out
    if words is not None:
        assert f"{name}: error: {path}: " in out and words in out, out


def run_dir_of(cli) -> Path:
    import core.predict

    return core.predict.Predictor(None).run.path


@pytest.mark.parametrize("name", [n for n, (maker, _) in IMAGES.items()
                                  if maker not in (None, "folder")])
def test_bad_image_uploaded_to_case_review(name, predictor, good):
    from core.review.case import read_upload
    from core.review.study import to_inputs, view_problems

    data = IMAGES[name][0]()
    words = IMAGES[name][1]
    bad = read_upload(name, data, SPEC)
    TRIED["case-review upload"] += 1
    if words is None:
        assert bad.error is None and bad.view == "RCC", bad.error
    else:
        assert bad.error and bad.error.startswith(f"{name}: ") and words in bad.error, bad.error
        assert "\n" not in bad.error and "/tmp" not in bad.error and "Traceback" not in bad.error
    views = [bad] + [read_upload(p.name, p.read_bytes(), SPEC) for p in good.values()]
    assert not view_problems(views)
    results = predictor.predict_study(to_inputs(views), cam=True)
    ok = [r for r in results if r.error is None]
    assert len(ok) == (4 if words is None else 3)
    assert all(r.p_malignant_roi_aware is not None and r.cam_roi_aware is not None for r in ok)


# --------------------------------------------------------------------------- masks

MASKS: dict[str, tuple] = {
    "small_mask.png": (lambda: encode(np.pad(np.full((10, 10), 255, np.uint8), 20)),
                       "differs from its mammogram"),
    "grey_mask.png": (lambda: encode(mammo(5)), "not binary"),
    "rgb_mask.png": (lambda: encode(np.dstack([np.zeros((96, 80), np.uint8),
                                               np.full((96, 80), 255, np.uint8),
                                               np.zeros((96, 80), np.uint8)])), "colour mask"),
    "empty_mask.png": (lambda: b"", "empty file (0 bytes)"),
    "text_mask.png": (lambda: b"not a mask\n" * 10, "not an image"),
    "bomb_mask.png": (lambda: png_claiming(12_000, 8_000), "megapixel limit"),
    "zero_mask.png": (lambda: encode(np.zeros((96, 80), np.uint8)), None),  # valid: no ROI
}


@pytest.mark.parametrize("name", list(MASKS))
def test_bad_mask(name, work, cli, good, monkeypatch):
    from core.review.case import read_mask_upload

    folder = work / "masks"
    folder.mkdir(exist_ok=True)
    image = folder / "case_RCC.png"
    cv2.imwrite(str(image), mammo(1))
    mask = folder / name
    mask.write_bytes(MASKS[name][0]())
    words = MASKS[name][1]
    rc, out, err = cli("predict", run_dir_of(cli), image, good["LCC"], "--mask",
                       f"{image}={mask}", "--device", "cpu")
    TRIED["cli predict --mask"] += 1
    assert rc == 0 and "Traceback" not in out + err, err
    assert any(line.startswith("good_LCC.png") and ("(benign" in line or "(malignant" in line)
               for line in out.splitlines()), out
    if words is None:
        assert "case_RCC.png: the mask is empty" in out and "noroi-RCC" in out, out
    else:
        assert f"case_RCC.png: error: {mask}: " in out and words in out, out
    TRIED["case-review mask upload"] += 1
    if name == "bomb_mask.png":  # refused from the header: never decoded
        def no_decode(*a, **k):
            raise AssertionError("a mask bomb was decoded")
        monkeypatch.setattr(cv2, "imdecode", no_decode)
    if words is None:
        assert read_mask_upload(name, mask.read_bytes(), (96, 80)).sum() == 0
    else:
        with pytest.raises(MaskError) as exc:
            read_mask_upload(name, mask.read_bytes(), (96, 80))
        assert str(exc.value).startswith(f"{name}: ") and words in str(exc.value)


# --------------------------------------------------------------------------- views

def test_duplicate_missing_and_contradicting_views(work, cli, good, predictor):
    from core.review.case import read_upload
    from core.review.study import to_inputs, view_problems

    twin = [read_upload("a_RCC.png", encode(mammo(1)), SPEC),
            read_upload("b_RCC.png", encode(mammo(2)), SPEC)]
    assert any("RCC is assigned twice" in p for p in view_problems(twin))
    unknown = read_upload("scan.png", encode(mammo(3)), SPEC)
    assert any("scan.png: choose its view" in p for p in view_problems([unknown], True))
    assert any("file 1: choose its view" in p for p in view_problems([unknown]))
    assert not any("scan.png" in p for p in view_problems([unknown]))
    three = [read_upload(p.name, p.read_bytes(), SPEC) for p in good.values()]  # RCC missing
    results = predictor.predict_study(to_inputs(three))
    assert len(results) == 3 and all(r.error is None for r in results)
    clash = dicom_bytes(laterality="R", position="MLO")
    view = read_upload("scan_L_CC.dcm", clash, SPEC)
    assert view.view == "RMLO" and any("file name says L" in w for w in view.warnings)
    path = work / "scan_L_CC.dcm"
    path.write_bytes(clash)
    rc, out, err = cli("predict", run_dir_of(cli), path, "--device", "cpu")
    assert rc == 0 and "RMLO" in out and "file name says L" in out, out + err
    TRIED["views (duplicate, unknown, missing, contradicting)"] += 4


# --------------------------------------------------------------------------- manifests

GOOD_ROWS = [
    {"image_path": "a_RCC.png", "patient_id": "P1", "study_id": "S1", "laterality": "R",
     "view": "CC", "label": "benign", "mask_path": "", "split": "train"},
    {"image_path": "a_LCC.png", "patient_id": "P2", "study_id": "S2", "laterality": "L",
     "view": "CC", "label": "malignant", "mask_path": "", "split": "test"},
]


def _csv(rows, drop=()) -> bytes:
    return pd.DataFrame(rows).drop(columns=list(drop)).to_csv(index=False).encode()


MANIFESTS: dict[str, tuple] = {
    "missing_columns": (lambda: _csv(GOOD_ROWS, drop=["label", "split"]), "missing columns: label, split"),
    "unknown_label": (lambda: _csv([GOOD_ROWS[0], {**GOOD_ROWS[1], "label": "maybe"}]),
                      "unknown label value(s) 'maybe'"),
    "unknown_view": (lambda: _csv([GOOD_ROWS[0], {**GOOD_ROWS[1], "view": "ML"}]),
                     "unknown view value(s) 'ML'"),
    "missing_files": (lambda: _csv([GOOD_ROWS[0], {**GOOD_ROWS[1], "image_path": "gone.png"}]),
                      "1 listed file(s) missing"),
    "duplicate_rows": (lambda: _csv([GOOD_ROWS[0], GOOD_ROWS[0], GOOD_ROWS[1]]),
                       "1 duplicate image row(s)"),
    "non_utf8": (lambda: _csv(GOOD_ROWS).replace(b"P1", b"P\xe91", 1), "not UTF-8 text"),
    "zero_bytes": (lambda: b"", "not a readable CSV"),
    "header_only": (lambda: _csv(GOOD_ROWS)[: _csv(GOOD_ROWS).index(b"\n") + 1], "no images listed"),
    "empty_image_path": (lambda: _csv([GOOD_ROWS[0], {**GOOD_ROWS[1], "image_path": ""}]),
                         "empty image_path on row(s) 3"),
    "patient_in_both_splits": (lambda: _csv([GOOD_ROWS[0], {**GOOD_ROWS[1], "patient_id": "P1"}]),
                               "1 patient(s) in both train and test: P1;"),
}


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_bad_manifest_on_the_command_line(name, work, cli):
    folder = work / f"manifest_{name}"
    folder.mkdir()
    for row in GOOD_ROWS:
        cv2.imwrite(str(folder / row["image_path"]), mammo(7))
    csv = folder / "manifest.csv"
    csv.write_bytes(MANIFESTS[name][0]())
    rc, out, err = cli("data", "describe", csv)
    TRIED["cli data describe"] += 1
    one_line_error(rc, err, str(csv), MANIFESTS[name][1])
    rc, out, err = cli("train", "--dataset", csv, "--out", folder / "run", "--epochs", "1")
    TRIED["cli train --dataset"] += 1
    one_line_error(rc, err, MANIFESTS[name][1])
    assert not (folder / "run" / "run.json").exists()


@pytest.mark.parametrize("typed, words", [
    ("../outside", "outside the data folder"),
    ("/etc", "outside the data folder"),
    ("escape/passwd", "outside the data folder"),
    ("mini/../../outside", "outside the data folder"),
    ("not-there", "no such file or folder"),
])
def test_dataset_paths_typed_in_the_browser_stay_in_the_data_root(typed, words, tmp_path,
                                                                     monkeypatch):
    from ui.common import resolve_dataset_path

    data = tmp_path / "data"
    (data / "mini").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (data / "escape").symlink_to("/etc")
    monkeypatch.setenv("MAMMOROUTE_DATA", str(data))
    assert resolve_dataset_path("mini") == (data / "mini").resolve()
    with pytest.raises(ManifestError) as exc:
        resolve_dataset_path(typed)
    TRIED["browser dataset path"] += 1
    assert words in str(exc.value) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------- the page itself

def test_case_review_page_with_one_broken_dicom_view(tmp_path, monkeypatch):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    write_run(ck / "tiny-run")
    monkeypatch.setenv("MAMMOROUTE_CHECKPOINTS", str(ck))
    monkeypatch.setenv("MAMMOROUTE_DATA", str(tmp_path))
    files = [(f"anon_{v}.dcm", dicom_bytes(laterality=v[0], position=v[1:]), "application/dicom")
             for v in ("RCC", "LCC", "RMLO")]
    files.append(("anon_LMLO.dcm", dicom_bytes(laterality="L", position="MLO")[:3000],
                  "application/dicom"))
    at = case_review_upload("tiny-run", files)
    assert not at.exception
    assert any("file 4" in e.value and "truncated" in e.value for e in at.error), \
        [e.value for e in at.error]
    [b for b in at.button if b.label == "Predict"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(str(m.value) for m in list(at.markdown) + list(at.caption))
    assert len(re.findall(r"^ROI-aware: (?:\*\*|:)", shown, re.M)) == 3  # one call line per read view
    assert len(at.image) == 3 + 3 + 1  # the hanging, the results, the Grad-CAM scale
    assert "not in this study" in shown  # the LMLO slot of the hanging layout
    assert "**Could not be read**" in shown and "Not yet placed" not in shown
    assert "Traceback" not in shown
    TRIED["case-review page (AppTest)"] += 1
