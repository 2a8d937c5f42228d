"""A study from a real PACS, predicted from the command line, and its results stored back.

Orthanc runs on 127.0.0.1 for this module (skipped only when it is not
installed); the study is one phantom four-view study (SYNTHETIC PHANTOM DATA,
64 px) and the run is test_predict's tiny one, whose cells each give a known
probability.  What is read back from the PACS (SR, SEG, SC) must equal what
``predict --json`` said, and ``dciodvfy`` must find no error in it.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pypdf import PdfReader
from test_predict import make_run

from core.__main__ import main
from core.dicomout.sr import CALL_NAME, CELL_NAME, GRID_METHOD, ROI_SOURCE_NAME, ROI_SOURCE_VALUE, call_of
from core.pacs import PacsClient, local_pacs, missing_orthanc, push_folder
from core.phantom import write_phantom
from core.review.readout import shown_call
from helpers import case_review_upload, free_port

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
GRIDS = ("roi_aware", "baseline")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pacs-results")


@pytest.fixture(scope="module")
def study(work) -> dict[str, Any]:
    """One phantom study's four views by view name, and a mask for its RCC."""
    write_phantom(work / "phantom", "vindr", 1, size=64, seed=5, workers=1)
    views = {}
    for path in sorted((work / "phantom").rglob("*.dicom")):
        ds = pydicom.dcmread(path)
        views[f"{ds.ImageLaterality}{ds.ViewPosition}"] = ds
    rcc = views["RCC"]
    mask = np.zeros((rcc.Rows, rcc.Columns), np.uint8)
    mask[rcc.Rows // 3:rcc.Rows // 2, rcc.Columns // 4:rcc.Columns // 2] = 255
    cv2.imwrite(str(work / "mask.png"), mask)
    return {"views": views, "uid": str(rcc.StudyInstanceUID), "mask": work / "mask.png",
            "mask_array": mask > 0}


@pytest.fixture(scope="module")
def run_dir(work) -> Path:
    return make_run(work / "run")


@pytest.fixture(scope="module")
def pacs(study, work) -> Iterator[str]:
    """A real Orthanc holding the study, stopped after the module."""
    if missing_orthanc():
        pytest.skip(f"no local PACS: {missing_orthanc()}")
    with local_pacs(free_port(), work / "orthanc") as server:
        report = push_folder(work / "phantom", PacsClient(server.url))
        assert (len(report.stored), report.refused) == (4, [])
        yield server.url


def _predict(run_dir: Path, pacs: str, study: dict, capsys, *extra: str) -> tuple[int, list, str]:
    code = main(["predict", str(run_dir), "--dicomweb", pacs, "--study", study["uid"], "--json",
                 "--mask", f"RCC={study['mask']}", "--device", "cpu", *extra])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def _series(pacs: str, study_uid: str) -> dict[str, list[pydicom.Dataset]]:
    """Every series of the study in the PACS: Series Instance UID → its instances."""
    from dicomweb_client import DICOMwebClient

    web = DICOMwebClient(pacs)
    out = {}
    for item in web.search_for_series(study_uid):
        uid = pydicom.Dataset.from_json(item).SeriesInstanceUID
        out[uid] = web.retrieve_series(study_uid, uid)
    return out


def _dciodvfy(ds: pydicom.Dataset, path: Path) -> str:
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    report = run.stdout + run.stderr
    assert not [line for line in report.splitlines() if line.startswith("Error")], report
    return report


@pytest.fixture(scope="module")
def stored(run_dir, pacs, study, work) -> dict[str, Any]:
    """``predict --dicomweb --store --json`` once, and what the PACS then holds (output
    captured by hand: capsys is function-scoped)."""
    before = set(_series(pacs, study["uid"]))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["predict", str(run_dir), "--dicomweb", pacs, "--study", study["uid"],
                     "--json", "--store", "--mask", f"RCC={study['mask']}", "--device", "cpu"])
    series = _series(pacs, study["uid"])
    new = {uid: items for uid, items in series.items() if uid not in before}
    by_kind = {items[0].Modality: items for items in new.values()}
    return {"code": code, "rows": json.loads(out.getvalue()), "err": err.getvalue(),
            "new": new, "kinds": by_kind, "count": len(series)}


def test_predict_from_the_pacs_stores_sr_seg_and_sc(stored, study):
    assert stored["code"] == 0, stored["err"]
    rows = stored["rows"]
    sources = {str(ds.SOPInstanceUID): view for view, ds in study["views"].items()}
    assert sorted(r["image"] for r in rows) == sorted(sources)  # views named by SOP UID
    assert {r["view"] for r in rows} == set(study["views"])
    assert sorted(stored["kinds"]) == ["OT", "SEG", "SR"] and len(stored["new"]) == 3
    lines = [ln for ln in stored["err"].splitlines() if "stored" in ln]
    assert [ln.split(": ", 1)[1].split(":")[0] for ln in lines] == ["stored SR", "stored SEG",
                                                                       "stored SC"]
    assert all(re.search(r"\d+\.\d KiB, series [\d.]+$", ln) for ln in lines), lines


def test_stored_sr_holds_the_predictions(stored, study):
    (sr_ds,) = stored["kinds"]["SR"]
    sr = hd.sr.Comprehensive3DSR.from_dataset(sr_ds)
    assert sr.StudyInstanceUID == study["uid"]
    assert sr.SeriesDescription.startswith("SYNTHETIC MammoRoute")
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    for row in stored["rows"]:
        group = groups[f"view {row['view']}"]
        refs = {str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                for item in group[0].ContentSequence if item.ValueType == "IMAGE"}
        assert refs == {row["image"]}
        for grid in GRIDS:
            p, t = row[f"p_malignant_{grid}"], row[f"threshold_{grid}"]
            found = {m.name.meaning: m.value for m in group.get_measurements()
                     if m.method == GRID_METHOD[grid]}
            assert found == pytest.approx({"Probability of cancer": p, "Threshold Value": t})
            (call,) = group.get_qualitative_evaluations(name=CALL_NAME[grid])
            assert call_of(call.value) == ("malignant" if p >= t else "benign")
        cells = [str(item.TextValue) for item in group[0].ContentSequence
                 if hd.sr.CodedConcept.from_dataset(item.ConceptNameCodeSequence[0]) == CELL_NAME]
        assert cells == [row["cell"]] and not row["fallback"]
        (roi,) = group.get_qualitative_evaluations(name=ROI_SOURCE_NAME)
        assert roi.value == ROI_SOURCE_VALUE["mask" if row["view"] == "RCC" else "none"]
    assert {row["cell"] for row in stored["rows"]} >= {"roi-RCC"}  # the mask routed RCC


def test_stored_seg_is_the_mask_and_sc_points_at_its_source(stored, study):
    rcc = study["views"]["RCC"]
    (seg_ds,) = stored["kinds"]["SEG"]
    seg = hd.seg.Segmentation.from_dataset(seg_ds)
    assert [uid for _, _, uid in seg.get_source_image_uids()] == [str(rcc.SOPInstanceUID)]
    pixels = seg.get_pixels_by_source_instance([str(rcc.SOPInstanceUID)], segment_numbers=[1])
    assert np.array_equal(pixels[0, :, :, 0].astype(bool), study["mask_array"])
    scs = stored["kinds"]["OT"]
    sources = {str(ds.SOPInstanceUID): ds for ds in study["views"].values()}
    assert len(scs) == 4
    assert {str(sc.SourceImageSequence[0].ReferencedSOPInstanceUID) for sc in scs} == set(sources)
    for sc in scs:
        src = sources[str(sc.SourceImageSequence[0].ReferencedSOPInstanceUID)]
        assert sc.StudyInstanceUID == src.StudyInstanceUID
        assert sc.SeriesInstanceUID != src.SeriesInstanceUID
        assert list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert sc.pixel_array.shape[:2] == (src.Rows, src.Columns)  # the whole image, as stored
        assert sc.PatientID == src.PatientID and sc.PatientName == src.PatientName


def test_stored_objects_pass_dciodvfy(stored, work):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; scripts/test installs it")
    for kind, items in stored["kinds"].items():
        _dciodvfy(items[0], work / f"stored-{kind}.dcm")


def test_storing_again_makes_new_series(stored, run_dir, pacs, study, capsys):
    code, rows, _ = _predict(run_dir, pacs, study, capsys, "--store")
    assert code == 0 and rows == stored["rows"]
    series = _series(pacs, study["uid"])
    assert len(series) == stored["count"] + 3
    assert set(stored["new"]) <= set(series)  # nothing was overwritten


def test_report_from_the_pacs_holds_the_predictions(stored, run_dir, pacs, study, work, capsys):
    out = work / "pacs-report.pdf"
    assert main(["report", str(run_dir), "--dicomweb", pacs, "--study", study["uid"], "--mask",
                 f"RCC={study['mask']}", "--pdf", str(out), "--device", "cpu"]) == 0
    assert "[SYNTHETIC]" in capsys.readouterr().out  # the phantom's headers say so
    text = "\n".join(page.extract_text() for page in PdfReader(out).pages)
    for row in stored["rows"]:
        line = next(ln for ln in text.splitlines() if ln.startswith(row["view"] + " "))
        for grid in GRIDS:
            shown = shown_call(row[f"p_malignant_{grid}"], row[f"threshold_{grid}"])
            assert f"{shown.probability} {shown.threshold} {shown.word}" in line, (grid, line)
        assert row["image"] not in text  # SOP UIDs only with --show-identifiers
    if shutil.which("pdftoppm"):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile",
                        str(out), str(ARTIFACTS / "report-page1")], check=True, timeout=60)


@pytest.mark.parametrize("problem", ["unreachable", "missing study"])
def test_pacs_problems_are_one_line_within_30_seconds(run_dir, pacs, study, work, capsys, problem):
    url = f"http://127.0.0.1:{free_port()}/dicom-web" if problem == "unreachable" else pacs
    uid = study["uid"] if problem == "unreachable" else "1.2.3.4.5"
    started = time.monotonic()
    code = main(["report", str(run_dir), "--dicomweb", url, "--study", uid, "--pdf",
                 str(work / "never.pdf"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert time.monotonic() - started < 30
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {url}: ")
    assert ("cannot connect" if problem == "unreachable" else "study 1.2.3.4.5 not found") in err
    assert not (work / "never.pdf").exists()


def test_usage_errors_are_one_line(run_dir, work, capsys, monkeypatch):
    monkeypatch.delenv("MAMMOROUTE_DICOMWEB_URL", raising=False)
    image = str(work / "any.dcm")
    for args, said in ((["--study", "1.2.3"], "--study needs --dicomweb URL"),
                       ([image, "--dicomweb", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3"],
                        "either image files or --dicomweb"),
                       ([image, "--store"], "--store needs a study from a PACS"),
                       ([], "no images")):
        assert main(["predict", str(run_dir), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err


def test_the_newest_image_of_a_view_is_read_and_the_others_named():
    from core.pacs.client import ImageRef, hanging_order
    from core.pacs.fetch import newest_per_view

    def ref(uid: str, view: str, acquired: str) -> ImageRef:
        return ImageRef("1.2", "1.2.3", uid, "1.2.840.10008.5.1.4.1.1.1.2", view[:1], view[1:],
                        acquired, None, "")

    images = tuple(hanging_order([ref("1", "RCC", "20260101090000"), ref("2", "LCC", "20260101090000"),
                                  ref("3", "RCC", "20260101100000"), ref("4", "", "")]))
    chosen, notes = newest_per_view(images)
    assert [(im.sop_uid, im.view) for im in chosen] == [("3", "RCC"), ("2", "LCC"), ("4", "")]
    assert notes == ["RCC: 2 images; the newest (3) is read, 1 left out"]


def test_the_store_button_says_a_dead_pacs_in_one_line(tmp_path, monkeypatch):
    from pydicom.uid import generate_uid
    from test_reliability_inputs import dicom_bytes, write_run

    ck = tmp_path / "checkpoints"
    write_run(ck / "tiny-run")
    monkeypatch.setenv("MAMMOROUTE_CHECKPOINTS", str(ck))
    monkeypatch.setenv("MAMMOROUTE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("MAMMOROUTE_DICOMWEB_URL", raising=False)
    study = generate_uid()
    files = [(f"view{k}.dcm", dicom_bytes(laterality=v[0], position=v[1:], StudyInstanceUID=study,
                                           SeriesInstanceUID=generate_uid(), PatientID="P-1"),
              "application/dicom") for k, v in enumerate(("RCC", "LCC", "RMLO", "LMLO"))]
    at = case_review_upload("tiny-run", files)
    [b for b in at.button if b.label == "Predict"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Store results in the PACS" not in [b.label for b in at.button]  # no PACS set
    dead = f"http://127.0.0.1:{free_port()}/dicom-web"
    at.session_state["pacs_url"] = dead  # the page's PACS URL field
    at.run()
    [b for b in at.button if b.label == "Store results in the PACS"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    (said,) = [e.value for e in at.error if dead in e.value]
    assert said.startswith(f"{dead}: storing the Structured Report ") and "cannot connect" in said
    assert "\n" not in said


def _breaking_proxy(upstream: str) -> type:
    """A DICOMweb front of ``upstream`` that answers searches and metadata as it does, and
    breaks off every instance retrieval half-way."""
    import urllib.request

    from test_pacs import _Quiet

    base = upstream.rsplit("/dicom-web", 1)[0]

    class BreaksOffInstances(_Quiet):
        def do_GET(self):
            if "/instances/" in self.path and not self.path.endswith("/metadata"):
                self.send_response(200)
                self.send_header("Content-Type",
                                 'multipart/related; type="application/dicom"; boundary=b')
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"--b\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 500)
                self.wfile.flush()
                self.close_connection = True
                return
            accept = {"Accept": self.headers["Accept"] or "*/*"}
            request = urllib.request.Request(base + self.path, headers=accept)
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.headers["Content-Type"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    return BreaksOffInstances


def test_a_retrieval_breaking_off_is_one_line_and_stores_nothing(run_dir, pacs, study, capsys):
    from test_pacs import fake_pacs

    before = len(_series(pacs, study["uid"]))
    with fake_pacs(_breaking_proxy(pacs)) as url:
        started = time.monotonic()
        code = main(["predict", str(run_dir), "--dicomweb", url, "--study", study["uid"], "--store",
                     "--device", "cpu"])
        err = capsys.readouterr().err.strip()
    assert time.monotonic() - started < 30
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {url}: retrieving instance ") and "broke off mid-way" in err
    assert len(_series(pacs, study["uid"])) == before
