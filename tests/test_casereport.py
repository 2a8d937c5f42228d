"""A reviewed study read out: operating point, uninformative models, the breast rule,
why each view went where it went, and what a download carries."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.grid import CellGap
from core.predict import ViewResult
from core.review.export import export_name, export_record, export_rows, roi_boxes
from core.review.report import applied_threshold, breast_summary, routing_sentence, view_call
from core.runfolder.layout import RunSummary

RUN = RunSummary(Path("/runs/demo"), {
    "arch": "resnet10t", "img_size": 128, "synthetic": True,
    "cells": {"roi-RCC": {"sha256": "a" * 64}, "all-RCC": {"sha256": "b" * 64},
              "noroi-LCC": {"sha256": "c" * 64}, "all-LCC": {"sha256": "d" * 64}},
    "roi_model": {"status": "done", "sha256": "e" * 64}})
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _tuned(r, g):
    return view_call(r, g, {}, "tuned")


@pytest.mark.parametrize("point", ["tuned", "paper"])
def test_no_call_contradicts_its_number_at_the_edge(point):
    """Probabilities a hair either side of thresholds that round alike."""
    rng = np.random.default_rng(0)
    for t in [0.72, 0.3, 0.08, 0.5, 0.123456] + list(rng.uniform(0.01, 0.99, 40)):
        for p in (t, np.nextafter(t, 0), np.nextafter(t, 1), t - 1e-4, t + 1e-4, t - 0.004):
            call = view_call(ViewResult(image="x", view="RCC", p_malignant_baseline=float(p),
                                        threshold_baseline=float(t)), "baseline", {}, point)
            assert call.threshold == (t if point == "tuned" else 0.5)
            shown_p = float(call.shown.probability.rstrip(" %"))
            shown_t = float(call.shown.threshold.rstrip(" %"))
            assert call.shown.malignant == (p >= call.threshold)
            assert (shown_p >= shown_t) == call.shown.malignant


def test_operating_points():
    assert applied_threshold(0.37, "tuned") == 0.37
    assert applied_threshold(0.37, "paper") == 0.5
    assert applied_threshold(None, "tuned") == 0.5
    with pytest.raises(ValueError, match="operating point"):
        applied_threshold(0.3, "youden")


def test_uninformative_model_makes_no_call_and_does_not_decide():
    flat = ViewResult(image="a", view="RCC", p_malignant_baseline=0.9, threshold_baseline=0.999)
    fine = ViewResult(image="b", view="RMLO", p_malignant_baseline=0.2, threshold_baseline=0.3)
    call = view_call(flat, "baseline", {}, "tuned")
    assert call.uninformative and "100 %" in call.uninformative and call.word == "no call"
    (right, _) = breast_summary([flat, fine], _tuned)
    assert right["view_baseline"] == "RMLO" and right["call_baseline"].word == "benign"
    # at p >= 0.5 the threshold is not the model's, but a chance-level AUC still is
    assert view_call(flat, "baseline", {}, "paper").uninformative is None
    assert view_call(flat, "baseline", {"val_auc": 0.48}, "paper").uninformative


def test_routing_sentences_say_why():
    none = ViewResult(image="a", view="LCC", roi=False, roi_source="none",
                      cell_roi_aware="noroi-LCC")
    text = routing_sentence(none, counts={"benign": 60, "malignant": 1})
    assert text == ("No ROI marked and none proposed: read by the model for LCC views without "
                    "a finding, which saw 1 malignant image of 61 in training; treat a low "
                    "score as weak reassurance.")
    boxed = ViewResult(image="b", view="RCC", roi=True, roi_source="mask", cell_roi_aware="roi-RCC")
    assert routing_sentence(boxed, "box").startswith("An ROI was given (a drawn box): read by "
                                                     "the model for RCC views with a finding")
    found = ViewResult(image="c", view="RCC", roi=True, roi_source="proposed",
                       roi_probability=0.83, roi_threshold=0.3, cell_roi_aware="all-RCC",
                       fallback=True,
                       gap_roi_aware=CellGap("skipped", "5 training image(s), fewer than 8"))
    assert routing_sentence(found) == (
        "No ROI was marked; the ROI finder proposed one (83 % ≥ its threshold 30 %): the model "
        "for RCC views with a "
        "finding was skipped in training (5 training image(s), fewer than 8); the RCC model "
        "trained on all RCC images read it instead.")
    stopped = ViewResult(image="e", view="LCC", roi=False, roi_source="none",
                         cell_roi_aware="roi-LCC", fallback=True, gap_roi_aware=CellGap("pending"))
    assert routing_sentence(stopped).endswith(
        "without a finding was never trained (the run stopped before it); the model for LCC "
        "views with a finding read it instead.")
    missed = ViewResult(image="d", view="RCC", roi=False, roi_source="proposed",
                        roi_probability=0.04, roi_threshold=0.2, cell_roi_aware="noroi-RCC")
    assert "the ROI finder found none (4 % < its threshold 20 %)" in routing_sentence(missed)
    bare = ViewResult(image="d", view="RCC", roi=False, roi_source="proposed",
                      roi_probability=0.04, cell_roi_aware="noroi-RCC")
    assert "found none (no presence figure recorded)" in routing_sentence(bare)


def test_the_finders_words_never_contradict_its_threshold():
    from core.review.report import finder_words

    near = ViewResult(image="d", view="RCC", roi=False, roi_source="proposed",
                      roi_probability=0.99998, roi_threshold=0.999991, cell_roi_aware="noroi-RCC")
    text = routing_sentence(near)
    assert "the ROI finder found none (99.99 % < its threshold 100.00 %)" in text, text
    assert "100 %" not in text
    above = ViewResult(image="e", view="RCC", roi=True, roi_source="proposed",
                       roi_probability=0.9, roi_threshold=0.31, cell_roi_aware="roi-RCC")
    assert "proposed one (90 % ≥ its threshold 31 %)" in routing_sentence(above)
    for p, t in ((0.5, 0.5), (0.49999, 0.5), (0.123456, 0.1234), (1e-6, 2e-6)):
        r = ViewResult(image="f", roi=p >= t, roi_source="proposed", roi_probability=p,
                       roi_threshold=t)
        words = finder_words(r)
        assert ("≥" in words) == (p >= t), words


def test_roi_boxes_in_image_pixels():
    mask = np.zeros((100, 80), np.uint8)
    mask[10:20, 5:15] = 1
    mask[60:70, 40:50] = 1
    given = ViewResult(image="a", view="RCC", roi=True, roi_source="mask")
    assert sorted(roi_boxes(given, mask)) == [[5, 10, 15, 20], [40, 60, 50, 70]]
    proposed = ViewResult(image="b", view="RCC", roi=True, roi_source="proposed",
                          roi_boxes=[[1.4, 2.6, 30.2, 40.0]])
    assert roi_boxes(proposed, None) == [[1, 3, 30, 40]]
    assert roi_boxes(ViewResult(image="c", roi=False), mask) == []


def test_export_names_the_run_weights_date_operating_point_and_roi():
    mask = np.zeros((100, 80), np.uint8)
    mask[10:20, 5:15] = 1
    results = [
        ViewResult(image="Doe_Jane_RCC.dcm", view="RCC", roi=True, roi_source="mask",
                   cell_roi_aware="roi-RCC", cell_baseline="all-RCC",
                   p_malignant_roi_aware=0.61, threshold_roi_aware=0.4,
                   p_malignant_baseline=0.35, threshold_baseline=0.3,
                   warnings=["Doe_Jane_RCC.dcm: odd tag"]),
        ViewResult(image="Doe_Jane_LCC.dcm", view="LCC", roi=False, roi_source="proposed",
                   roi_probability=0.1, cell_roi_aware="noroi-LCC", cell_baseline="all-LCC",
                   p_malignant_roi_aware=0.05, threshold_roi_aware=0.2,
                   p_malignant_baseline=0.1, threshold_baseline=0.3)]
    record = export_record(results, RUN, "paper", lambda r, g: view_call(r, g, {}, "paper"),
                           {"Doe_Jane_RCC.dcm": ("box", mask)},
                           scrub=["Doe_Jane_RCC.dcm", "Doe_Jane_LCC.dcm"], when=WHEN)
    assert record["run"] == "demo" and record["date"] == "2026-12-01T09:30:00+00:00"
    assert record["operating_point"]["name"] == "paper"
    assert record["weights_sha256"] == {"all-LCC": "d" * 64, "all-RCC": "b" * 64,
                                        "noroi-LCC": "c" * 64, "roi-RCC": "a" * 64}
    assert record["roi_finder_sha256"] == "e" * 64
    rcc, lcc = record["views"]
    assert (rcc["roi_source"], rcc["roi_given_as"], rcc["roi_boxes"]) == \
        ("mask", "box", [[5, 10, 15, 20]])
    assert (rcc["threshold_roi_aware"], rcc["call_roi_aware"]) == (0.5, "malignant")
    assert (rcc["threshold_baseline"], rcc["call_baseline"]) == (0.5, "benign")
    assert (lcc["roi_source"], lcc["roi_boxes"], lcc["roi_probability"]) == ("proposed", [], 0.1)
    assert "Doe" not in json.dumps(record)
    rows = export_rows(record)
    assert rows[0]["roi_boxes"] == "5,10,15,20" and rows[0]["run"] == "demo"
    assert rows[0]["weights_sha256_roi_aware"] == "a" * 64
    assert rows[1]["weights_sha256_baseline"] == "d" * 64
    assert export_name("test-study-3", WHEN, "csv") == "mammoroute-test-study-3-2026-12-01.csv"
    assert export_name("a/b c", WHEN, "json") == "mammoroute-a-b-c-2026-12-01.json"
