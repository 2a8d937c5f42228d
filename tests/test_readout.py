"""Which figures a call's wording may quote: the counts of the threshold in use, and a
probability read as a frequency only where the run's measured calibration supports it."""
from __future__ import annotations

import numpy as np
import pytest

from core.evaluate.calibration import calibration_block
from core.review.readout import (
    FREQUENCY_ECE,
    FREQUENCY_MIN_IMAGES,
    calibration_sentence,
    counts_at,
    threshold_sentence,
)
from core.runfolder.layout import PAPER_COUNTS_KEY

TUNED = {"tp": 9, "fn": 1, "tn": 85, "fp": 15}
AT_HALF = {"tp": 6, "fn": 4, "tn": 97, "fp": 3}
META = {"threshold": 0.37, "threshold_source": "val", "val_auc": 0.91, "threshold_counts": TUNED}


def test_each_operating_point_quotes_its_own_counts():
    meta = {**META, PAPER_COUNTS_KEY: AT_HALF}
    assert counts_at(meta, 0.37) == TUNED and counts_at(meta, 0.5) == AT_HALF
    tuned, half = threshold_sentence(meta, 0.37), threshold_sentence(meta, 0.5)
    assert "caught 9 of 10 cancers" in tuned and "cleared 85 % of 100" in tuned
    assert half.startswith("called malignant at ≥ 50 %")
    assert "caught 6 of 10 cancers, 60 % sensitivity" in half and "cleared 97 % of 100" in half
    assert "9 of 10" not in half


def test_an_old_run_at_half_says_not_recorded_rather_than_the_tuned_counts():
    half = threshold_sentence(META, 0.5)
    assert counts_at(META, 0.5) is None
    assert "9 of 10" not in half and "85 %" not in half
    assert "not recorded" in half
    assert counts_at(META, 0.42) is None  # no other threshold borrows counts either


def test_a_tuned_threshold_of_half_uses_the_tuned_counts():
    meta = {**META, "threshold": 0.5}
    assert counts_at(meta, 0.5) == TUNED


def _block(gap: float, n: int, seed: int = 0) -> dict:
    """A calibration block of ``n`` images whose labels follow ``p - gap``: an ECE near ``gap``."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.3, 0.9, n)
    y = (rng.random(n) < np.clip(p - gap, 0, 1)).astype(int)
    return calibration_block(p, y)


def test_a_well_calibrated_large_test_split_earns_the_frequency_sentence():
    block = _block(0.0, 4000)
    assert block["ece"] <= FREQUENCY_ECE
    text = calibration_sentence({"roi_aware": block})
    assert "about 30 % means about 3 in 10" in text
    assert f"ECE {block['ece']:.2f}" in text and "ROI-aware" in text


def test_a_miscalibrated_grid_says_how_far_off_it_was():
    block = _block(0.2, 400)
    assert block["ece"] > FREQUENCY_ECE
    text = calibration_sentence({"roi_aware": block, "baseline": _block(0.0, 4000, 1)})
    roi, base = text.split("Baseline:")
    assert f"off by {100 * block['ece']:.0f} points on average (ECE {block['ece']:.2f})" in roi
    assert "3 in 10" not in roi and "3 in 10" in base


@pytest.mark.parametrize("n", [FREQUENCY_MIN_IMAGES - 1])
def test_a_small_test_split_does_not_certify_a_frequency(n):
    block = {**_block(0.0, 4000), "n": n, "ece": FREQUENCY_ECE / 2}
    text = calibration_sentence({"baseline": block})
    assert "3 in 10" not in text and f"only {n} test images" in text


def test_an_unmeasured_run_reads_as_a_ranking():
    for cal in (None, {}, {"roi_aware": {"ece": None}}):
        text = calibration_sentence(cal)
        assert "3 in 10" not in text and "not measured" in text


def test_phantom_trained_models_make_no_call_on_other_images():
    from core.predict import ViewResult
    from core.review.report import breast_table, is_demonstration, view_call

    assert is_demonstration(run_synthetic=True, images_synthetic=False)
    assert not is_demonstration(run_synthetic=True, images_synthetic=True)
    assert not is_demonstration(run_synthetic=False, images_synthetic=False)
    results = [ViewResult(image="a", view="RCC", p_malignant_baseline=0.9, threshold_baseline=0.3)]
    shown = view_call(results[0], "baseline", {}, "tuned", demonstration=True)
    assert shown.word == "no call" and shown.probability == 0.9  # the number stays
    assert view_call(results[0], "baseline", {}, "tuned").word == "malignant"
    right = breast_table(results, lambda r, g: view_call(r, g, {}, "tuned", True))[0]
    assert right["baseline call"] == "no call"
    assert "≥" not in right["baseline: deciding view"]
    assert "demonstration" in right["baseline: deciding view"]


def test_the_run_s_measured_calibration_is_read_from_metrics_json(tmp_path):
    import json

    from core.review.report import measured_calibration
    from core.runfolder.layout import RunSummary

    run = RunSummary(path=tmp_path, info={"status": "complete"})
    assert measured_calibration(run) is None
    block = _block(0.2, 300)
    (tmp_path / "metrics.json").write_text(json.dumps({"calibration": {"roi_aware": block}}))
    assert measured_calibration(run)["roi_aware"]["ece"] == pytest.approx(block["ece"])
