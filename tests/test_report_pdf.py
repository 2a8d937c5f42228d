"""The one-study PDF report: its text holds what the audit record holds, worded as the app
words it; identifiers only on request; bad input is refused with one line and no file.

The run is test_predict's tiny one (zeroed heads, a distinct bias per cell, so each
probability names its model); the study is one phantom four-view study (SYNTHETIC
PHANTOM DATA, 64 px).  Page 1 is rendered with pdftoppm into tests/artifacts/ to be
looked at.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pypdf import PdfReader
from test_predict import make_run

from core.__main__ import main
from core.cli.report import synthetic_image
from core.datasets.roi import read_mask
from core.grid import VIEWS
from core.phantom import SYNTHETIC_TEXT, YOURS_ON_SYNTHETIC_TEXT, synthetic_notice_text, write_phantom
from core.predict import Predictor, ViewInput
from core.review import pdf as report_pdf
from core.review.export import export_record
from core.review.readout import shown_call
from core.review.report import GRIDS, OPERATING_POINTS, cell_meta, view_call

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def run_dir(work) -> Path:
    return make_run(work / "run")


@pytest.fixture(scope="module")
def study(work) -> dict[str, Any]:
    """The phantom's four views, and a mask for the first (so one view routes with ROI)."""
    write_phantom(work / "vindr", "vindr", 1, size=64, seed=3, workers=1)
    images = sorted(str(p) for p in (work / "vindr" / "images").rglob("*.dicom"))
    h, w = _shape(images[0])
    mask = np.zeros((h, w), np.uint8)
    mask[h // 3:h // 2, w // 3:w // 2] = 255
    cv2.imwrite(str(work / "mask.png"), mask)
    return {"images": images, "mask": str(work / "mask.png")}


def _shape(dicom: str) -> tuple[int, int]:
    import pydicom

    ds = pydicom.dcmread(dicom, stop_before_pixels=True)
    return int(ds.Rows), int(ds.Columns)


def _record(run_dir: Path, study: Mapping[str, Any], point: str) -> dict[str, Any]:
    """The export record of the same study, made here as case review makes it."""
    predictor = Predictor(run_dir)
    first = study["images"][0]
    inputs = [ViewInput(name=i, path=i, mask_path=study["mask"] if i == first else None)
              for i in study["images"]]
    results = predictor.predict_study(inputs)

    def call_of(r, grid):
        return view_call(r, grid, cell_meta(predictor.run, getattr(r, f"cell_{grid}")), point)

    return export_record(results, predictor.run, point, call_of,
                         {first: ("mask", read_mask(study["mask"]))})


def _report(run_dir: Path, study: Mapping[str, Any], out: Path, *extra: str) -> int:
    return main(["report", str(run_dir), *study["images"], "--mask",
                 f"{study['images'][0]}={study['mask']}", "--pdf", str(out), "--device", "cpu",
                 *extra])


def _text(pdf: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _assert_holds(text: str, record: Mapping[str, Any]) -> None:
    """Every view's and breast's probability, threshold and call, as the page words them."""
    lines = text.splitlines()
    assert len(record["views"]) == 4
    for v in record["views"]:
        row = next(line for line in lines if line.startswith(v["view"] + " "))
        for grid in GRIDS:
            shown = shown_call(v[f"p_malignant_{grid}"], v[f"threshold_{grid}"])
            assert f"{v[f'cell_{grid}']} {shown.probability} {shown.threshold} " \
                   f"{v[f'call_{grid}']}" in row, (grid, row)
    for b in record["breasts"]:
        row = next(line for line in lines if line.startswith(b["breast"] + " "))
        for grid in GRIDS:
            shown = shown_call(b[f"p_{grid}"], b[f"threshold_{grid}"])
            assert f"{shown.probability} {shown.relation} {shown.threshold} " \
                   f"({b[f'view_{grid}']}) {b[f'call_{grid}']}" in row, (grid, row)


def test_report_holds_the_records_calls_and_no_file_name(run_dir, study, work, capsys):
    out = work / "report.pdf"
    assert _report(run_dir, study, out) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}") and "[SYNTHETIC]" in said
    text = _text(out)
    record = _record(run_dir, study, "tuned")
    _assert_holds(text, record)
    calls = {v["call_roi_aware"] for v in record["views"]}
    assert calls == {"benign", "malignant"}  # the tiny run's biases give both calls
    flat = _flat(text)
    assert f"Operating point: tuned ({OPERATING_POINTS['tuned']})." in flat
    assert SYNTHETIC_TEXT in flat and "Research software, not for diagnosis." in flat
    assert "An ROI was given (an uploaded mask)" in flat  # routing in words
    assert all(sha in flat for sha in record["weights_sha256"].values())
    for image in study["images"]:  # neither the file names nor the study folder
        assert Path(image).name not in flat and Path(image).parent.name not in flat
    assert ".dicom" not in flat
    assert len(PdfReader(out).pages[0].images) >= 1  # the hanging picture
    if shutil.which("pdftoppm"):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "1", "-l", "1", "-singlefile",
                        str(out), str(ARTIFACTS / "report_page1")], check=True, timeout=60)
        page = cv2.imread(str(ARTIFACTS / "report_page1.png"))
        assert page is not None and page.shape[0] > page.shape[1]  # A4 portrait
        assert (page < 40).all(axis=2).mean() > 0.05  # the black hanging frames are on it


def test_paper_operating_point_and_identifiers_on_request(run_dir, study, work):
    out = work / "paper.pdf"
    assert _report(run_dir, study, out, "--threshold", "paper", "--show-identifiers") == 0
    text = _text(out)
    record = _record(run_dir, study, "paper")
    assert {v["threshold_roi_aware"] for v in record["views"]} == {0.5}
    _assert_holds(text, record)
    flat = _flat(text)
    assert f"Operating point: paper ({OPERATING_POINTS['paper']})." in flat
    assert all(Path(i).name in flat for i in study["images"])


@pytest.mark.parametrize("missing", ["image", "run", "mask"])
def test_bad_input_is_one_line_and_no_file(run_dir, study, work, capsys, missing):
    out = work / f"refused-{missing}.pdf"
    images = list(study["images"])
    run, mask = str(run_dir), study["mask"]
    gone = str(work / "no-such-thing.dicom")
    if missing == "image":
        images[1] = gone
    elif missing == "run":
        run = gone = str(work / "no-such-run")
    else:
        mask = gone = str(work / "no-such-mask.png")
    code = main(["report", run, *images, "--mask", f"{images[0]}={mask}", "--pdf", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {gone}: ") and "not found" in err
    assert not out.exists() and not list(work.glob(f".{out.name}*"))


def test_unreadable_image_refuses_the_whole_report(run_dir, study, work, capsys):
    bad = work / "broken.png"
    bad.write_bytes(b"not an image at all")
    out = work / "refused-unreadable.pdf"
    code = main(["report", str(run_dir), *study["images"][:3], str(bad), "--pdf", str(out),
                 "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(bad) in err
    assert not out.exists()


def test_without_a_unicode_font_the_report_spells_symbols_in_latin1(run_dir, study, monkeypatch):
    record = _record(run_dir, study, "tuned")
    monkeypatch.setattr(report_pdf, "FONT_DIRS", ())
    data = report_pdf.write_report(record, np.zeros((40, 60, 3), np.uint8), None)
    text = _flat("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))
    assert "Research software, not for diagnosis." in text and SYNTHETIC_TEXT not in text
    b = record["breasts"][0]
    shown = shown_call(b["p_roi_aware"], b["threshold_roi_aware"])
    relation = ">=" if shown.malignant else "<"
    assert f"{shown.probability} {relation} {shown.threshold} ({b['view_roi_aware']})" in text


def test_a_phantom_run_makes_no_call_on_images_that_are_not_phantoms(run_dir, study, work):
    own = work / "own-study"
    own.mkdir()
    images = [shutil.copy(i, own / f"view{k}.dcm") for k, i in enumerate(study["images"])]
    assert not any(map(synthetic_image, images))
    synthetic = shutil.copytree(run_dir, work / "phantom-trained")
    info = json.loads((synthetic / "run.json").read_text())
    (synthetic / "run.json").write_text(json.dumps({**info, "synthetic": True}))
    out = work / "own.pdf"
    assert main(["report", str(synthetic), *map(str, images), "--pdf", str(out), "--device",
                 "cpu"]) == 0
    flat = _flat(_text(out))
    assert YOURS_ON_SYNTHETIC_TEXT in flat
    rows = [line for line in _text(out).splitlines() if line.split(" ")[0] in VIEWS]
    assert len(rows) == 4 and all(row.count("no call") == 2 for row in rows), rows


def test_which_notice_a_study_carries(study, work):
    own = work / "own.png"
    cv2.imwrite(str(own), np.full((8, 8), 128, np.uint8))
    assert synthetic_image(study["images"][0]) and not synthetic_image(own)
    assert synthetic_notice_text(run_synthetic=False, images_synthetic=True) == SYNTHETIC_TEXT
    assert synthetic_notice_text(True, False) == YOURS_ON_SYNTHETIC_TEXT
    assert synthetic_notice_text(False, False) is None


def test_proposed_roi_is_worded_with_its_finder_probability_and_boxes(run_dir, study):
    record = _record(run_dir, study, "tuned")
    rcc = next(v for v in record["views"] if v["view"] == "RCC")
    rcc.update(roi=True, roi_source="proposed", roi_probability=0.83, roi_boxes=[[5, 6, 20, 30]],
               why="No ROI was marked; the ROI finder proposed one (83 %): read by the model "
                   "for RCC views with a finding.")
    data = report_pdf.write_report(record, np.zeros((40, 60, 3), np.uint8), None, opacity=0.0)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert next(line for line in text.splitlines() if line.startswith("RCC ")).startswith(
        "RCC proposed (finder 83 %)")
    flat = _flat(text)
    assert "RCC: No ROI was marked; the ROI finder proposed one (83 %)" in flat
    assert "ROI box in image pixels: (5, 6)" in flat and "(20, 30)." in flat
    assert "Grad-CAM off." in flat and "proposals (RCC) are not outlined" in flat
