"""Case review without Streamlit: the uploaded study's bookkeeping, ROI choices, what
makes a prediction out of date, the calls, the downloads and the result pictures."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from core.pixels.crop import CropBox
from core.pixels.preprocess import PreprocessParams
from core.predict import ViewResult
from core.review.case import (
    CaseView,
    choose_roi,
    proposal_box,
    roi_options,
    scale_box,
    take_proposal,
    update_mask,
    view_caption,
)
from core.review.export import study_downloads
from core.review.picture import result_mask, result_picture
from core.review.report import StudyCalls, breast_table, views_read
from core.review.study import (
    StudyResults,
    UploadedStudy,
    file_label,
    hide_names,
    identity_problem,
    prediction_key,
    too_many,
    unplaced,
    view_problems,
)
from core.runfolder.layout import RunSummary
from core.wording import count

SPEC = PreprocessParams(64, crop=False)
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@dataclass
class FakeUpload:
    """What the uploader hands over; counts how often its bytes are read."""

    file_id: str
    name: str
    data: bytes
    reads: int = 0

    def getvalue(self) -> bytes:
        self.reads += 1
        return self.data


def _png(side: str, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    h, w = 96, 72
    yy, xx = np.mgrid[0:h, 0:w]
    cx = 0 if side == "L" else w - 1
    img = np.where((xx - cx) ** 2 / (0.9 * w) ** 2 + (yy - h / 2) ** 2 / (0.45 * h) ** 2 < 1,
                   120 + rng.integers(0, 40, (h, w)), 5).astype(np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def _view(key: str = "a", view: str | None = "RCC", shape=(96, 72), **kw) -> CaseView:
    return CaseView(key=key, name=f"{key}.png", pixels=np.zeros(shape, np.uint8),
                    source_shape=shape, display=np.zeros(shape, np.uint8), view=view, **kw)


# ------------------------------------------------------------------ the uploaded study

def test_uploaded_study_adds_drops_and_keeps_across_a_page_switch():
    study = UploadedStudy()
    rcc, lcc = FakeUpload("1", "x_RCC.png", _png("R")), FakeUpload("2", "x_LCC.png", _png("L"))
    study.sync([rcc, lcc], SPEC)
    assert [v.view for v in study.study()] == ["RCC", "LCC"]
    study.sync([rcc, lcc], SPEC)
    assert rcc.reads == 1  # decoded once, however often the uploader reports it
    study.sync([rcc], SPEC)  # removed from the uploader: gone from the study
    assert [v.view for v in study.study()] == ["RCC"]
    study.detach()  # the page was left: the uploader shows nothing, the study stays
    study.sync([lcc], SPEC)
    assert [v.view for v in study.study()] == ["RCC", "LCC"]
    study.clear()
    assert study.study() == []


def test_a_cleared_study_gets_a_new_empty_uploader():
    """The browser keeps an uploader's files: only a new widget key forgets them."""
    study = UploadedStudy()
    first = study.uploader_key
    study.sync([FakeUpload("1", "a_RCC.png", _png("R"))], SPEC)
    study.clear()
    assert study.study() == [] and study.shown == set() and study.uploader_key != first
    b = FakeUpload("9", "b_LCC.png", _png("L"))
    study.sync([b], SPEC)
    assert [v.view for v in study.study()] == ["LCC"]
    key = study.uploader_key
    study.sync([], SPEC)  # every file removed by hand: the same files may be chosen again
    assert study.study() == [] and study.uploader_key != key
    study.detach()  # a page switch is not a removal
    assert study.uploader_key != key and study.generation == 2


def test_files_of_two_patients_or_studies_are_not_one_study():
    a1, a2 = (_view(k, v, patient_id="DOE^JANE", study_id="1.2.3")
              for k, v in (("a1", "RCC"), ("a2", "LCC")))
    b1 = _view("b1", "RMLO", patient_id="ROE^RICH", study_id="1.2.9")
    assert identity_problem([a1, a2], False) is None
    assert identity_problem([a1, a2, _view("x", "LMLO")], False) is None  # no tags: no claim
    hidden = identity_problem([a1, a2, b1], False)
    assert "PatientID names 2 different patients (file 1 and file 2; file 3)" in hidden
    assert "DOE" not in hidden and "ROE" not in hidden and "a1.png" not in hidden
    shown = identity_problem([a1, a2, b1], True)
    assert "a1.png and a2.png (DOE^JANE); b1.png (ROE^RICH)" in shown
    b1.patient_id = "DOE^JANE"  # same patient, another study
    assert "StudyInstanceUID names 2 different studies" in identity_problem([a1, a2, b1], False)


def test_messages_name_files_by_their_place_while_identifiers_are_hidden():
    doe = _view("DOE_JOHN_123", None)
    twin = [_view("x", "LCC"), doe, _view("DOE_JANE", "LCC")]
    assert file_label(1, "DOE_JOHN_123.png", False) == "file 2"
    assert file_label(1, "DOE_JOHN_123.png", True) == "DOE_JOHN_123.png"
    hidden = " ".join(view_problems(twin))
    assert "file 2: choose its view" in hidden and "(file 1 and file 3)" in hidden
    assert "DOE" not in hidden
    assert "DOE_JOHN_123.png: choose its view" in " ".join(view_problems(twin, True))
    text = "DOE_JOHN_123.png: unreadable; see DOE_JANE.png"
    assert hide_names(text, twin, False) == "file 2: unreadable; see file 3"
    assert hide_names(text, twin, True) == text


def test_a_mask_asked_for_but_refused_keeps_the_view_waiting():
    v = _view("a", "LCC")
    choose_roi(v, "mask")
    update_mask(v)
    [problem] = view_problems([v])
    assert problem.startswith("LCC: no usable mask yet") and "72 × 96 px" in problem
    v.mask_file = np.ones((96, 72), np.uint8)
    assert view_problems([v]) == []



@pytest.mark.parametrize(("breast", "views", "text"), [
    ("left", "LCC, LMLO", "LCC, LMLO"), ("left", "LCC", "LCC only; LMLO missing"),
    ("right", "RMLO", "RMLO only; RCC missing"), ("right", "", "none read")])
def test_a_breast_read_from_one_view_names_the_missing_one(breast, views, text):
    assert views_read(breast, views) == text


def test_counts_read_in_the_singular_for_one():
    assert count(1, "image") == "1 image" and count(2, "image") == "2 images"
    assert count(0, "study", "studies") == "0 studies" and count(1, "study", "studies") == "1 study"


def test_dicom_tags_give_each_uploads_patient_and_study(tmp_path):
    from core.review.case import read_upload
    from helpers import dicom_write

    path = dicom_write(tmp_path / "x.dcm", PatientID="P-7", StudyInstanceUID="1.2.840.7")
    v = read_upload("x.dcm", path.read_bytes(), SPEC)
    assert (v.patient_id, v.study_id) == ("P-7", "1.2.840.7")
    blank = dicom_write(tmp_path / "y.dcm", PatientID="")
    assert read_upload("y.dcm", blank.read_bytes(), SPEC).patient_id is None


def test_another_runs_spec_reads_again_from_the_uploader_or_asks_for_the_file():
    study = UploadedStudy()
    rcc, lcc = FakeUpload("1", "x_RCC.png", _png("R")), FakeUpload("2", "x_LCC.png", _png("L"))
    study.sync([rcc, lcc], SPEC)
    other = PreprocessParams(64, crop=False, source_side=128)
    study.respec([rcc], other)  # LCC's bytes were dropped and the uploader no longer has it
    rcc_view, lcc_view = study.study()
    assert rcc_view.source_side == 128 and rcc_view.error is None and rcc.reads == 2
    assert lcc_view.pixels is None and "upload it again" in lcc_view.error
    assert lcc_view.error.startswith("x_LCC.png: ")
    study.respec([rcc], other)
    assert rcc.reads == 2  # already under this spec


def test_too_many_files_and_views_outside_the_hanging():
    views = [_view(str(i), v) for i, v in enumerate(["RCC", "LCC", "RMLO", "LMLO", "RCC"])]
    assert "5 files uploaded" in too_many(views) and too_many(views[:4]) is None
    unknown, broken = _view("u", None), CaseView(key="b", name="b.png", error="b.png: bad")
    waiting, unreadable = unplaced([*views[:2], unknown, broken])
    assert waiting == [unknown] and unreadable == [broken]


def test_a_prediction_is_out_of_date_when_its_view_changes():
    views = [_view("a", "RCC"), _view("b", "LCC")]
    key = prediction_key("/runs/r", views[0], True)
    assert prediction_key("/runs/r", views[0], True) == key
    assert prediction_key("/runs/r", views[0], False) != key
    assert prediction_key("/runs/other", views[0], True) != key
    assert prediction_key("/runs/r", views[1], True) != key
    views[0].view = "LMLO"
    assert prediction_key("/runs/r", views[0], True) != key
    views[0].view = "RCC"
    views[0].box = (10, 10, 30, 30)
    choose_roi(views[0], "box")
    update_mask(views[0])
    assert prediction_key("/runs/r", views[0], True) != key


class CountingPredictor:
    """Stands in for core.predict.Predictor: records which views it was asked for."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def predict_study(self, inputs, cam=False, propose=True):
        self.asked.append([i.name for i in inputs])
        return [ViewResult(image=i.name, view=i.view, roi=i.mask is not None) for i in inputs]


def test_only_the_changed_view_is_predicted_again():
    views = [_view(k, v) for k, v in zip("abcd", ["RCC", "LCC", "RMLO", "LMLO"])]
    model, results = CountingPredictor(), StudyResults()
    results.predict(model, "/runs/r", views, True)
    assert model.asked == [["a.png", "b.png", "c.png", "d.png"]]
    assert (results.predicted, results.kept) == (4, 0)
    first = results.current("/runs/r", views, True)
    views[1].box = (5, 5, 40, 40)  # a box on LCC: only LCC is out of date
    choose_roi(views[1], "box")
    update_mask(views[1])
    assert results.stale("/runs/r", views, True) == [views[1]]
    assert [r.image for r in results.current("/runs/r", views, True)] == ["a.png", "c.png",
                                                                          "d.png"]
    results.predict(model, "/runs/r", views, True)
    assert model.asked[-1] == ["b.png"]
    assert results.summary() == "Predicted 1 view; 3 unchanged views kept from before."
    now = results.current("/runs/r", views, True)
    assert [r.roi for r in now] == [False, True, False, False]
    assert all(now[i] is first[i] for i in (0, 2, 3))  # the others' results, untouched
    results.predict(model, "/runs/r", views[:2], True)  # two views left the study
    assert len(model.asked) == 2 and set(results.by_view) == {"a", "b"}
    assert results.summary() == "Predicted 0 views; 2 unchanged views kept from before."


# ------------------------------------------------------------------ views and ROIs

def test_roi_choices_give_the_routing_mask():
    v = _view(dataset_mask=np.ones((96, 72), np.uint8))
    assert roi_options(v, has_finder=True) == ["finder", "none", "dataset", "mask", "box"]
    assert v.roi_choice == "dataset"  # the dataset's annotation is the default when there
    choose_roi(v, v.roi_choice)
    update_mask(v)
    assert v.mask.sum() == 96 * 72 and not v.propose
    choose_roi(v, "finder")
    update_mask(v)
    assert v.mask is None and v.propose
    v.box = (10, 20, 30, 50)
    choose_roi(v, "box")
    update_mask(v)
    assert v.mask.sum() == 20 * 30 and not v.propose
    plain = _view()
    assert roi_options(plain, has_finder=False)[0] == "none" and plain.roi_choice == "none"
    assert view_caption(_view(view=None)).startswith("View not found")


def test_a_proposal_is_taken_as_the_users_box_or_rejected():
    r = ViewResult(image="a", view="RCC", roi=True, roi_source="proposed",
                   roi_boxes=[[10.4, 20, 30, 40], [5, 25, 12, 60.6]])
    assert proposal_box(r) == [5, 20, 30, 60.6]
    assert proposal_box(ViewResult(image="b", roi=False, roi_source="proposed")) is None
    v = _view()
    take_proposal(v, proposal_box(r))
    assert v.roi_choice == "box" and v.box == (5, 20, 30, 61)
    take_proposal(v, None)
    assert v.roi_choice == "none" and v.box is None
    take_proposal(v, [0, 0, 0, 0])  # "draw a box instead"
    assert v.roi_choice == "box" and v.box is None
    assert scale_box((30, 40, 10, 5), 2.0, 0.5) == (20, 2, 60, 20)


# ------------------------------------------------------------------ results

def _run(tmp_path: Path) -> RunSummary:
    for cell, meta in (("roi-RCC", {"threshold": 0.3, "counts": {"train": {"benign": 9,
                                                                           "malignant": 1}}}),
                       ("all-RCC", {"threshold": 0.6})):
        (tmp_path / cell).mkdir()
        (tmp_path / cell / "meta.json").write_text(json.dumps(meta))
    return RunSummary(tmp_path, {"arch": "resnet10t", "img_size": 64, "synthetic": True,
                                 "cells": {"roi-RCC": {"sha256": "a" * 64},
                                           "all-RCC": {"sha256": "b" * 64}}})


def _result(**kw) -> ViewResult:
    fields = dict(image="a.png", key="a", view="RCC", roi=True, roi_source="mask",
                  cell_roi_aware="roi-RCC", cell_baseline="all-RCC",
                  p_malignant_roi_aware=0.35, threshold_roi_aware=0.3,
                  p_malignant_baseline=0.55, threshold_baseline=0.6)
    return ViewResult(**{**fields, **kw})


def test_study_calls_read_each_cells_meta_once(tmp_path):
    run = _run(tmp_path)
    calls = StudyCalls(run, "tuned")
    r = _result()
    assert calls(r, "roi_aware").word == "malignant" and calls(r, "baseline").word == "benign"
    assert calls.train_counts(r) == {"benign": 9, "malignant": 1}
    (tmp_path / "roi-RCC" / "meta.json").write_text("{broken")
    assert calls.meta("roi-RCC")["threshold"] == 0.3  # read once per render
    assert StudyCalls(run, "paper")(r, "roi_aware").threshold == 0.5
    [right, left] = breast_table([r], calls)
    assert right["breast"] == "right" and right["ROI-aware call"] == "malignant"
    assert right["ROI-aware: deciding view"] == "35 % ≥ 30 % (RCC)"
    assert right["baseline call"] == "benign" and left["views"] == "none read"
    assert right["views"] == "RCC only; RMLO missing"


def test_downloads_name_the_study_and_carry_ids_only_when_shown(tmp_path):
    run = _run(tmp_path)
    calls = StudyCalls(run, "tuned")
    v = _view("a", study_id="S-0042")
    csv, js = study_downloads([_result()], [v], run, "tuned", calls, "upload", False, WHEN)
    assert (csv.name, csv.mime) == ("mammoroute-upload-2026-12-01.csv", "text/csv")
    assert js.name.endswith(".json") and js.mime == "application/json"
    assert "S-0042" not in csv.text + js.text and "a.png" not in csv.text + js.text
    table = pd.read_csv(pd.io.common.StringIO(csv.text))
    assert table.loc[table["level"] == "view", "call_roi_aware"].tolist() == ["malignant"]
    csv, js = study_downloads([_result()], [v], run, "tuned", calls, "upload", True, WHEN)
    assert csv.name == "mammoroute-S-0042-2026-12-01.csv"
    assert json.loads(js.text)["study_id"] == "S-0042"


def test_result_picture_maps_the_cam_back_through_the_crop():
    v = _view(shape=(96, 72))
    cam = np.zeros((64, 64), np.float32)
    cam[20:40, 20:40] = 1.0
    r = _result(cam_roi_aware=cam, cam_baseline=np.zeros((64, 64), np.float32),
                preprocessed=np.zeros((64, 64), np.uint8), box=CropBox(0.0, 0.0, 0.5, 1.0))
    hot, empty = result_picture(r, v, "roi_aware", 1.0, 120)
    assert hot.shape == (120, 120, 3) and not empty and hot.std() > 0
    _, empty = result_picture(r, v, "baseline", 1.0, 120)
    assert empty
    plain, empty = result_picture(r, v, None, 1.0, 120)
    assert not empty and plain.std() == 0
    assert result_mask(r, None) is None
    proposed = _result(roi_source="proposed", roi_boxes=[[0, 0, 10, 10]])
    assert result_mask(proposed, v).sum() == 100


@pytest.mark.parametrize("point", ["tuned", "paper"])
def test_breast_table_has_a_row_per_breast(tmp_path, point):
    rows = breast_table([_result()], StudyCalls(_run(tmp_path), point))
    assert [r["breast"] for r in rows] == ["right", "left"]


def test_downloads_let_an_auditor_check_sizes_code_finder_and_breasts(tmp_path, monkeypatch):
    import core
    from core import version

    run = _run(tmp_path)
    run.info["roi_model"] = {"status": "done", "sha256": "e" * 64, "threshold": 0.4321}
    calls = StudyCalls(run, "tuned")
    v = _view("a", shape=(96, 72))
    v.view_source = "filename"
    p = 0.351234567891
    r = _result(p_malignant_roi_aware=p, roi_source="proposed", roi_probability=0.87654321,
                roi_boxes=[[1.0, 2.0, 30.0, 40.0]])
    csv, js = study_downloads([r], [v], run, "tuned", calls, "upload", False, WHEN)
    record = json.loads(js.text)
    assert record["mammoroute_version"] == core.__version__
    assert record["mammoroute_commit"] == version.code_commit()
    assert record["roi_finder_threshold"] == 0.4321
    [view] = record["views"]
    assert (view["width"], view["height"]) == (72, 96)
    assert (view["view_source"], view["view_found_by"]) == ("filename", "file name")
    assert view["p_malignant_roi_aware"] == p and view["roi_probability"] == 0.87654321
    table = pd.read_csv(pd.io.common.StringIO(csv.text))
    assert table["level"].tolist() == ["view", "breast", "breast"]
    views, breasts = table[table["level"] == "view"], table[table["level"] == "breast"]
    assert (views["width"].item(), views["height"].item()) == (72, 96)
    assert views["view_found_by"].item() == "file name"
    assert views["p_malignant_roi_aware"].item() == p  # unrounded
    assert (table["roi_finder_threshold"] == 0.4321).all()
    assert set(breasts["breast"]) == {"right", "left"}
    right = breasts[breasts["breast"] == "right"]
    assert right["call_roi_aware"].item() == "malignant" and right["p_roi_aware"].item() == p
    # a breast read from one view names the missing one, in the CSV as in the JSON
    assert right["views_read"].item() == "RCC only; RMLO missing"
    assert right["missing_views"].item() == "RMLO"
    assert breasts.loc[breasts["breast"] == "left", "views_read"].item() == "none read"
    assert breasts.loc[breasts["breast"] == "left", "missing_views"].item() == "LCC, LMLO"
    by_breast = {b["breast"]: b for b in record["breasts"]}
    assert (by_breast["right"]["missing_views"], by_breast["right"]["views_read"]) == (
        "RMLO", "RCC only; RMLO missing")
    assert breasts["mammoroute_version"].tolist() == [core.__version__] * 2


def test_two_files_of_one_name_are_two_views_with_their_own_rows(tmp_path):
    """Identity is the SOP Instance UID (else the bytes' SHA-256), never the file name:
    two different IM-0001.dcm keep their own ROI and facts in the downloads."""
    from core.review.case import read_upload
    from helpers import RAMP, dicom_write

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = dicom_write(tmp_path / "a" / "IM-0001.dcm", RAMP, ImageLaterality="R", ViewPosition="CC")
    b = dicom_write(tmp_path / "b" / "IM-0001.dcm", RAMP[:, ::-1].copy(), ImageLaterality="L",
                    ViewPosition="CC")
    va, vb = (read_upload("IM-0001.dcm", p.read_bytes(), SPEC) for p in (a, b))
    assert va.key == va.sop_instance_uid and vb.key == vb.sop_instance_uid and va.key != vb.key
    assert "PixelData" not in va.header and va.header.SOPInstanceUID == va.key
    png = read_upload("IM-0001.png", _png("R"), SPEC)
    assert png.key == hashlib.sha256(_png("R")).hexdigest() and png.header is None
    vb.box = (2, 2, 10, 12)
    choose_roi(vb, "box")
    update_mask(vb)
    model, results = CountingPredictor(), StudyResults()
    results.predict(model, "/runs/r", [va, vb], True)
    now = results.current("/runs/r", [va, vb], True)
    assert [r.key for r in now] == [va.key, vb.key] and [r.image for r in now] == ["IM-0001.dcm"] * 2
    run = _run(tmp_path)
    _, js = study_downloads(now, [va, vb], run, "tuned", StudyCalls(run, "tuned"), "upload", False, WHEN)
    rows = json.loads(js.text)["views"]
    assert [r["roi_boxes"] for r in rows] == [[], [[2, 2, 10, 12]]]


def test_the_same_image_uploaded_twice_is_one_view():
    study = UploadedStudy()
    one, again = FakeUpload("1", "x_RCC.png", _png("R")), FakeUpload("2", "copy.png", _png("R"))
    study.sync([one, again], SPEC)
    assert len(study.study()) == 1
    assert study.repeated(False) == ["A file is the same image as file 1 (same bytes): it is used once."]
    assert study.repeated(True) == ["copy.png is the same image as x_RCC.png (same bytes): it is used once."]
    study.sync([again], SPEC)  # the first copy removed: the other one is the view now
    assert [v.name for v in study.study()] == ["copy.png"] and study.repeated(True) == []


def test_code_commit_is_none_outside_a_checkout(tmp_path, monkeypatch):
    import core
    from core import version

    version.code_commit.cache_clear()
    monkeypatch.setattr(core, "__file__", str(tmp_path / "core" / "__init__.py"))
    (tmp_path / "core").mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    try:
        assert version.code_commit() is None
        assert version.code_version() == {"version": core.__version__, "commit": None}
    finally:
        version.code_commit.cache_clear()
