"""DICOM result objects (SR, SEG, SC) made from a phantom study and a synthetic result.

The study is the phantom's (SYNTHETIC PHANTOM DATA, 64 px, four views); the
result numbers are made up and known, so every value read back from the
written files must equal the one put in.  ``dciodvfy`` (Debian dicom3tools)
checks each written file against its IOD.
"""
from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from core.dicomout import (
    BreastCall,
    BreastOutcome,
    DicomOutError,
    GridOutcome,
    RunIdentity,
    StudyResult,
    ViewOutcome,
    make_scs,
    make_segs,
    make_sr,
    result_objects,
)
from core.dicomout.sr import (
    CALL_NAME,
    CELL_NAME,
    DECIDING_UID,
    DECIDING_VIEW,
    FALLBACK_NAME,
    GRID_METHOD,
    ROI_SOURCE_NAME,
    ROI_SOURCE_VALUE,
    call_of,
)
from core.phantom import write_phantom

IDENTIFIERS = ("PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDsSequence",
               "PatientBirthDate", "PatientSex", "PatientAge", "AccessionNumber", "StudyID",
               "StudyDate", "StudyTime", "ReferringPhysicianName", "InstitutionName",
               "StudyDescription")
RUN = RunIdentity(name="synthetic-test-run", identity="run-0001-synthetic", version="0.1.0",
                  model_sha256={"roi-RCC": "1" * 64, "noroi-LMLO": "2" * 64, "all-RCC": "3" * 64})
# Synthetic per-view numbers: view → (ROI-aware p, t, call), (baseline p, t, call), cell,
# fallback, ROI source
NUMBERS = {
    "RCC": ((0.8125, 0.42, "malignant"), (0.375, 0.5, "benign"), "roi-RCC", None, "box"),
    "RMLO": ((0.125, 0.3, "benign"), (0.25, 0.5, "benign"), "noroi-RMLO", None, "none"),
    "LCC": ((0.5, 0.6, "benign"), (0.625, 0.5, "malignant"), "roi-LCC",
            "roi-LCC was not trained (need ≥ 2 of each class); all-LCC read it", "proposed"),
    "LMLO": ((0.0625, 0.7, None), (None, None, None), "noroi-LMLO", None, "none"),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[pydicom.Dataset]:
    root = tmp_path_factory.mktemp("phantom") / "vindr"
    write_phantom(root, "vindr", 1, size=64, seed=3, workers=1)
    found = [pydicom.dcmread(p) for p in sorted((root / "images").rglob("*.dicom"))]
    assert len(found) == 4
    return found


def _view(ds: pydicom.Dataset) -> str:
    return f"{ds.ImageLaterality}{ds.ViewPosition}"


def _mask(ds: pydicom.Dataset, y0: int, x0: int) -> np.ndarray:
    mask = np.zeros((ds.Rows, ds.Columns), bool)
    mask[y0:y0 + 9, x0:x0 + 13] = True
    mask[y0 + 4, x0 + 20] = True  # a stray pixel: frames must match exactly, not roughly
    return mask


def _result(sources: list[pydicom.Dataset], masks: bool = True) -> StudyResult:
    views = []
    for k, ds in enumerate(sources):
        name = _view(ds)
        aware, base, cell, fallback, roi_source = NUMBERS[name]
        mask = _mask(ds, 5 + 3 * k, 4 + k) if masks and roi_source != "none" else None
        overlay = np.random.default_rng(k).integers(0, 256, (48, 40, 3), dtype=np.uint8)
        views.append(ViewOutcome(
            sop_instance_uid=str(ds.SOPInstanceUID), view=name, cell=cell, fallback=fallback,
            roi_aware=GridOutcome(*aware), baseline=GridOutcome(*base),
            roi_source=roi_source if masks else "none", roi_mask=mask, cam_overlay=overlay,
            cam_grid="baseline" if name == "LMLO" else "roi_aware"))
    uid = {v.view: v.sop_instance_uid for v in views}
    breasts = [BreastOutcome("R", BreastCall("malignant", uid["RCC"]), BreastCall("benign", uid["RCC"])),
               BreastOutcome("L", BreastCall("benign", uid["LCC"]), BreastCall("malignant", uid["LCC"]))]
    return StudyResult(run=RUN, views=views, breasts=breasts, synthetic=True)


def _dciodvfy(path: Path) -> str:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; scripts/test installs it")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    report = run.stdout + run.stderr
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors, report
    return report


def _write(obj: pydicom.Dataset, path: Path) -> Path:
    obj.save_as(path, enforce_file_format=True)
    return path


def _identifiers_from(source: pydicom.Dataset, obj: pydicom.Dataset) -> None:
    """Every identifier the object carries with a value is the source's, word for word."""
    for key in IDENTIFIERS:
        value = obj.get(key)
        if value not in (None, ""):
            assert source.get(key) == value, key


def _text(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: hd.sr.CodedConcept
          ) -> list[str]:
    return [str(item.get("TextValue") or item.get("UID")) for item in group[0].ContentSequence
            if hd.sr.CodedConcept.from_dataset(item.ConceptNameCodeSequence[0]) == name]


STANDARD_CALLS = {"malignant": ("21594007", "SCT"), "benign": ("30807003", "SCT")}


def _code_key(code: hd.sr.CodedConcept) -> tuple[str, str]:
    return (code.value, code.scheme_designator)


def _coded(code: object) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)  # type: ignore[attr-defined]


def _source_uids(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> set[str]:
    return {str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            for item in group[0].ContentSequence if item.ValueType == "IMAGE"}


def test_sr_holds_every_value_of_the_result(sources: list[pydicom.Dataset], tmp_path: Path) -> None:
    result = _result(sources)
    path = _write(make_sr(result, sources), tmp_path / "sr.dcm")
    _dciodvfy(path)
    sr = hd.sr.srread(path)
    assert sr.StudyInstanceUID == sources[0].StudyInstanceUID
    assert sr.SeriesDescription.startswith("SYNTHETIC MammoRoute")
    _identifiers_from(sources[0], sr)
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    assert sorted(groups) == ["breast L", "breast R", "view LCC", "view LMLO", "view RCC",
                              "view RMLO"]
    for view in result.views:
        group = groups[f"view {view.view}"]
        assert _source_uids(group) == {view.sop_instance_uid}
        for grid in ("roi_aware", "baseline"):
            outcome = getattr(view, grid)
            found = {m.name.meaning: m.value for m in group.get_measurements()
                     if m.method == GRID_METHOD[grid]}
            expected = {k: v for k, v in (("Probability of cancer", outcome.probability),
                                          ("Threshold Value", outcome.threshold)) if v is not None}
            assert found == pytest.approx(expected), (view.view, grid)
            (call,) = group.get_qualitative_evaluations(name=CALL_NAME[grid])
            assert call_of(call.value) == outcome.call, (view.view, grid)
            assert _code_key(call.value) == STANDARD_CALLS.get(outcome.call, ("NO-CALL", "99MMRT"))
        (roi,) = group.get_qualitative_evaluations(name=ROI_SOURCE_NAME)
        assert roi.value == ROI_SOURCE_VALUE[view.roi_source]
        assert _text(group, CELL_NAME) == [view.cell]
        assert _text(group, FALLBACK_NAME) == ([view.fallback] if view.fallback else [])
        assert _text(group, _coded(codes.DCM.AlgorithmName)) == ["MammoRoute"]
        assert _text(group, _coded(codes.DCM.AlgorithmVersion)) == [RUN.version]
        parameters = _text(group, _coded(codes.DCM.AlgorithmParameters))
        assert parameters == [f"run={RUN.name}", f"run identity={RUN.identity}",
                              "intended use=research software, not for diagnosis",
                              *(f"sha256 {cell}={digest}"
                                for cell, digest in sorted(RUN.model_sha256.items()))]
    by_uid = {v.sop_instance_uid: v.view for v in result.views}
    for breast in result.breasts:
        group = groups[f"breast {breast.laterality}"]
        assert {by_uid[u][0] for u in _source_uids(group)} == {breast.laterality}
        for grid in ("roi_aware", "baseline"):
            (call,) = group.get_qualitative_evaluations(name=CALL_NAME[grid])
            assert call_of(call.value) == getattr(breast, grid).call
            uid = getattr(breast, grid).deciding_view
            assert _text(group, DECIDING_UID[grid]) == [uid]
            assert _text(group, DECIDING_VIEW[grid]) == [by_uid[uid]]
    device = sr.content.get_observer_contexts()[0]  # the device observer
    assert device.observer_identifying_attributes.serial_number == RUN.identity


def test_seg_frames_equal_the_routing_masks(sources: list[pydicom.Dataset], tmp_path: Path) -> None:
    result = _result(sources)
    segs = make_segs(result, sources)
    with_roi = [v for v in result.views if v.roi_mask is not None]
    assert [v.view for v in with_roi] == sorted((v.view for v in with_roi),
                                                key=[v.view for v in result.views].index)
    assert len(segs) == len(with_roi) == 2 and len({s.SeriesInstanceUID for s in segs}) == 1
    for k, (obj, view) in enumerate(zip(segs, with_roi)):
        path = _write(obj, tmp_path / f"seg{k}.dcm")
        _dciodvfy(path)
        seg = hd.seg.segread(path)
        assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
        _identifiers_from(sources[0], seg)
        assert [uid for _, _, uid in seg.get_source_image_uids()] == [view.sop_instance_uid]
        pixels = seg.get_pixels_by_source_instance([view.sop_instance_uid], segment_numbers=[1])
        assert pixels.shape == (1, *view.roi_mask.shape, 1)
        assert np.array_equal(pixels[0, :, :, 0].astype(bool), view.roi_mask)
        segment = seg.get_segment_description(1)
        expected = "SEMIAUTOMATIC" if view.roi_source == "proposed" else "MANUAL"
        assert segment.algorithm_type.value == expected
        assert segment.segmented_property_type == codes.SCT.Lesion
        assert seg.ImageComments.startswith("SYNTHETIC PHANTOM DATA")
        assert "not for diagnosis" in seg.ImageComments
    assert make_segs(_result(sources, masks=False), sources) == []  # no ROI, no SEG


def test_sc_is_derived_and_points_at_its_source(sources: list[pydicom.Dataset], tmp_path: Path) -> None:
    result = _result(sources)
    scs = make_scs(result, sources)
    assert len(scs) == 4 and len({s.SeriesInstanceUID for s in scs}) == 1
    by_uid = {str(s.SOPInstanceUID): s for s in sources}
    for k, (obj, view) in enumerate(zip(scs, result.views)):
        path = _write(obj, tmp_path / f"sc{k}.dcm")
        _dciodvfy(path)
        sc = pydicom.dcmread(path)
        assert list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        (ref,) = sc.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == view.sop_instance_uid
        source = by_uid[view.sop_instance_uid]
        assert ref.ReferencedSOPClassUID == source.SOPClassUID
        assert np.array_equal(sc.pixel_array, view.cam_overlay)
        assert list(sc.PatientOrientation) == list(source.PatientOrientation)
        assert sc.StudyInstanceUID == source.StudyInstanceUID
        assert sc.ImageComments.startswith("SYNTHETIC PHANTOM DATA")
        _identifiers_from(source, sc)
    assert "baseline grid" in scs[[v.view for v in result.views].index("LMLO")].DerivationDescription


def test_lossy_sc_is_marked_and_close_to_the_overlay(sources: list[pydicom.Dataset],
                                                     tmp_path: Path) -> None:
    result = _result(sources)
    smooth = np.zeros((48, 40, 3), np.uint8)  # a heat-map-like ramp, which JPEG keeps well
    smooth[..., 0] = np.linspace(0, 255, 40, dtype=np.uint8)[None]
    smooth[..., 1] = np.linspace(0, 200, 48, dtype=np.uint8)[:, None]
    view = ViewOutcome(**{**result.views[0].__dict__, "cam_overlay": smooth})
    (obj,) = make_scs(StudyResult(RUN, [view], synthetic=True), sources, lossy=True)
    path = _write(obj, tmp_path / "sc-lossy.dcm")
    _dciodvfy(path)
    sc = pydicom.dcmread(path)
    assert sc.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert (sc.LossyImageCompression, sc.LossyImageCompressionMethod) == ("01", "ISO_10918_1")
    rgb = sc.pixel_array  # pydicom turns YBR into RGB when it decodes
    assert np.abs(rgb.astype(int) - smooth).mean() < 4


def test_every_call_makes_new_series_in_the_same_study(sources: list[pydicom.Dataset]) -> None:
    result = _result(sources)
    first, second = result_objects(result, sources), result_objects(result, sources)
    assert len(first) == 1 + 2 + 4
    study = sources[0].StudyInstanceUID
    assert {o.StudyInstanceUID for o in first + second} == {study}
    series_1 = {o.SeriesInstanceUID for o in first}
    series_2 = {o.SeriesInstanceUID for o in second}
    assert len(series_1) == len(series_2) == 3 and not series_1 & series_2
    assert not series_1 & {s.SeriesInstanceUID for s in sources}
    assert not {o.SOPInstanceUID for o in first} & {o.SOPInstanceUID for o in second}


def test_results_that_do_not_fit_the_sources_are_refused(sources: list[pydicom.Dataset]) -> None:
    result = _result(sources)
    wrong_size = ViewOutcome(**{**result.views[0].__dict__, "roi_mask": np.ones((3, 3), bool)})
    with pytest.raises(DicomOutError, match="ROI mask"):
        make_segs(StudyResult(RUN, [wrong_size]), sources)
    stranger = ViewOutcome(**{**result.views[0].__dict__, "sop_instance_uid": "1.2.3.4"})
    with pytest.raises(DicomOutError, match="no source image"):
        make_sr(StudyResult(RUN, [stranger]), sources)
    other_study = copy.deepcopy(sources[0])
    other_study.StudyInstanceUID = "1.2.3.5"
    other_study.SOPInstanceUID = "1.2.3.6"
    with pytest.raises(DicomOutError, match="2 studies"):
        make_scs(result, [*sources, other_study])
    r_view = next(v.sop_instance_uid for v in result.views if v.view == "RCC")
    left_decided_by_right = BreastOutcome("L", BreastCall("benign", r_view),
                                          BreastCall(None, None))
    with pytest.raises(DicomOutError, match="deciding view"):
        make_sr(StudyResult(RUN, result.views, [left_decided_by_right]), sources)
    grey = ViewOutcome(**{**result.views[0].__dict__,
                          "cam_overlay": np.zeros((8, 8), np.uint8)})
    with pytest.raises(DicomOutError, match="RGB uint8"):
        make_scs(StudyResult(RUN, [grey]), sources)


def test_prediction_results_become_view_outcomes(sources: list[pydicom.Dataset]) -> None:
    from core.dicomout.from_predict import view_outcome
    from core.predict import ViewResult

    lcc = next(ds for ds in sources if _view(ds) == "LCC")
    mask = _mask(lcc, 10, 10)
    served_by_baseline = ViewResult(
        image="upload-1.dcm", view="LCC", roi=True, cell_roi_aware="all-LCC", fallback=True,
        fallback_reason="roi-LCC has no model (not trained); served by all-LCC",
        p_malignant_roi_aware=0.7, threshold_roi_aware=0.6, p_malignant_baseline=0.2,
        threshold_baseline=0.5, roi_source="mask")
    outcome = view_outcome(served_by_baseline, str(lcc.SOPInstanceUID), roi_mask=mask,
                           given_as="box", cam_overlay=np.zeros((4, 4, 3), np.uint8))
    assert outcome.cell == "roi-LCC"  # the routed cell; the fallback says who served
    assert outcome.fallback == served_by_baseline.fallback_reason
    assert (outcome.roi_aware, outcome.baseline) == (GridOutcome(0.7, 0.6, "malignant"),
                                                     GridOutcome(0.2, 0.5, "benign"))
    assert outcome.roi_source == "box" and np.array_equal(outcome.roi_mask, mask)
    (seg,) = make_segs(StudyResult(RUN, [outcome]), sources)
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"

    nothing_found = ViewResult(image="upload-2.dcm", view="RCC", roi=False,
                               cell_roi_aware="noroi-RCC", p_malignant_roi_aware=0.1,
                               threshold_roi_aware=None, roi_source="proposed")
    outcome = view_outcome(nothing_found, "1.2.3", roi_mask=mask)
    assert (outcome.cell, outcome.roi_source, outcome.roi_mask, outcome.fallback) == \
        ("noroi-RCC", "none", None, None)
    assert outcome.roi_aware == GridOutcome(0.1, None, None)  # no threshold, no call
    with pytest.raises(DicomOutError, match="upload-3"):
        view_outcome(ViewResult(image="upload-3.dcm", error="unreadable"), "1.2.4")


def test_a_reviewed_study_becomes_the_result_the_page_states(sources: list[pydicom.Dataset],
                                                             tmp_path: Path) -> None:
    from core.dicomout.from_predict import study_result
    from core.predict import ViewResult
    from core.review.readout import shown_call
    from core.review.report import Call
    from core.runfolder.layout import RunSummary

    by_view = {_view(ds): ds for ds in sources}
    run = RunSummary(tmp_path / "page-run", {
        "cells": {"roi-RCC": {"sha256": "a" * 64}, "noroi-LCC": {"sha256": "b" * 64},
                  "all-RCC": {"sha256": "c" * 64}, "all-LCC": {"sha256": "d" * 64},
                  "noroi-RMLO": {"sha256": "e" * 64}},
        "roi_model": {"status": "done", "sha256": "f" * 64}})
    rcc = ViewResult(image="a.dcm", view="RCC", roi=True, roi_source="proposed",
                     roi_boxes=[[4.0, 6.0, 20.0, 18.0], [30.0, 30.0, 34.0, 40.0]],
                     cell_roi_aware="roi-RCC", cell_baseline="all-RCC",
                     p_malignant_roi_aware=0.9, p_malignant_baseline=0.2)
    lcc = ViewResult(image="b.dcm", view="LCC", roi_source="none", cell_roi_aware="noroi-LCC",
                     cell_baseline="all-LCC", p_malignant_roi_aware=0.3,
                     p_malignant_baseline=0.7)
    broken = ViewResult(image="c.dcm", view="RMLO", error="unreadable")
    uninformative = {"all-LCC"}  # the page shows its number and makes no call

    def page(r: ViewResult, grid: str) -> Call | None:
        p, cell = getattr(r, f"p_malignant_{grid}"), getattr(r, f"cell_{grid}")
        return None if p is None else Call(p, 0.5, shown_call(p, 0.5),
                                           "chance" if cell in uninformative else None)

    headers = {"a.dcm": by_view["RCC"], "b.dcm": by_view["LCC"], "c.dcm": by_view["RMLO"]}
    result = study_result([rcc, lcc, broken], headers, run, page, synthetic=True)
    assert [v.view for v in result.views] == ["RCC", "LCC"]  # nothing to state of a broken view
    aware, base = result.views[1].roi_aware, result.views[1].baseline
    assert (aware, base) == (GridOutcome(0.3, 0.5, "benign"), GridOutcome(0.7, 0.5, None))
    mask = result.views[0].roi_mask
    assert result.views[0].roi_source == "proposed"
    assert mask.shape == (by_view["RCC"].Rows, by_view["RCC"].Columns)
    assert mask.sum() == 16 * 12 + 4 * 10 and mask[6, 4] and not mask[18, 20]
    uid = {v.view: v.sop_instance_uid for v in result.views}
    right, left = result.breasts
    assert (right.laterality, right.roi_aware, right.baseline) == (
        "R", BreastCall("malignant", uid["RCC"]), BreastCall("benign", uid["RCC"]))
    assert (left.laterality, left.roi_aware, left.baseline) == (
        "L", BreastCall("benign", uid["LCC"]), BreastCall(None, None))
    assert dict(result.run.model_sha256) == {"roi-RCC": "a" * 64, "all-RCC": "c" * 64,
                                             "noroi-LCC": "b" * 64, "all-LCC": "d" * 64,
                                             "ROI finder": "f" * 64}
    assert len(result.run.identity) == 64 and result.run.name == "page-run"
    (seg,) = make_segs(result, sources)  # the proposal routed RCC: SEMIAUTOMATIC, its boxes
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert make_sr(result, sources).SeriesDescription.startswith("SYNTHETIC")


def test_sources_without_patient_attributes_get_objects_with_empty_ones(
        sources: list[pydicom.Dataset], tmp_path: Path) -> None:
    bare = []
    for ds in sources:
        ds = copy.deepcopy(ds)
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "AccessionNumber", "StudyID", "ReferringPhysicianName", "PatientOrientation"):
            if key in ds:
                delattr(ds, key)
        bare.append(ds)
    objects = result_objects(_result(bare), bare)
    assert len(objects) == 1 + 2 + 4
    for k, obj in enumerate(objects):
        _dciodvfy(_write(obj, tmp_path / f"bare{k}.dcm"))
        assert obj.PatientName == "" and obj.PatientID == "" and obj.AccessionNumber == ""
    assert all(obj.PatientOrientation == "" for obj in objects[3:])  # the SCs: unknown, as given
    assert "PatientName" not in bare[0]  # the sources themselves are left as they were
    lacking = copy.deepcopy(bare[0])
    del lacking.SeriesInstanceUID
    with pytest.raises(DicomOutError, match="lacks SeriesInstanceUID"):
        make_sr(_result(bare), [lacking, *bare[1:]])


def test_a_source_highdicom_refuses_is_one_line(sources: list[pydicom.Dataset]) -> None:
    odd = [copy.deepcopy(ds) for ds in sources]
    odd[0].StudyDate = "not a date"  # a malformed DA value
    with pytest.raises(DicomOutError, match="cannot carry the result objects") as err:
        result_objects(_result(odd), odd)
    assert "\n" not in str(err.value)


def test_the_store_report_names_each_refusal_and_sizes_what_was_stored(
        sources: list[pydicom.Dataset]) -> None:
    from core.dicomout.store import store_results

    class SegRefusingPacs:  # stands in for PacsClient.store's contract: None or the reason
        url = "http://127.0.0.1:1/dicom-web"

        def __init__(self) -> None:
            self.sent: list[pydicom.Dataset] = []

        def store(self, ds: pydicom.Dataset, what: str) -> str | None:
            self.sent.append(ds)
            return "refused by the PACS (failure reason 272)" if ds.Modality == "SEG" else None

    pacs = SegRefusingPacs()
    report = store_results(pacs, sources, _result(sources))  # type: ignore[arg-type]
    assert [o.kind for o in report.objects] == ["SR", "SEG", "SEG", "SC", "SC", "SC", "SC"]
    assert [o.sop_uid for o in report.objects] == [str(ds.SOPInstanceUID) for ds in pacs.sent]
    assert (len(report.stored), len(report.refused)) == (5, 2)
    lines = report.lines()
    sc_size = sum(o.size for o in report.stored if o.kind == "SC")
    assert lines[0].startswith("stored SR: 1 instance, ")
    assert lines[1] == (f"stored SC: 4 instances, {sc_size / 1024:.1f} KiB, series "
                        f"{report.objects[-1].series_uid}")
    assert sc_size > 4 * 48 * 40 * 3  # each overlay's RGB pixels, uncompressed
    assert lines[2:] == [f"refused SEG {o.sop_uid}: refused by the PACS (failure reason 272)"
                         for o in report.refused]
