"""Paired statistics of baseline vs ROI-aware: bootstrap deltas and the clustered test.

Hand-made prediction tables whose answers are known: identical grids, a grid
better on every patient, a patient effect shared by both grids, and the same
patients with every image repeated.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import evaluate as ev
from core.evaluate.paired import DELTA_METRICS, clustered_discordance, sign_flip_p
from core.evaluate.report import format_delta, format_paper_table
from ui.metrics_view import delta_with_ci, paired_text

REPO = Path(__file__).resolve().parent.parent
DELTA_KEYS = tuple(f"delta_{m}" for m in DELTA_METRICS)


def _table(images: list[tuple[str, str, int, dict[str, float]]],
           threshold: float = 0.5) -> pd.DataFrame:
    """Rows from (image, patient, label, {mode: p_malignant})."""
    rows = []
    for image, patient, label, by_mode in images:
        for mode, p in by_mode.items():
            rows.append(dict(image_path=image, patient_id=patient, study_id=patient, view="RCC",
                             roi=bool(label), label=label, mode=mode,
                             cell="all-RCC" if mode == "baseline" else "roi-RCC",
                             fallback=False, p_malignant=p, threshold=threshold))
    return pd.DataFrame(rows)


def _better_on_every_patient() -> pd.DataFrame:
    """12 patients, one malignant and one benign image each; ROI-aware gets both right.

    Patients 0–5: the baseline misses the cancer (0.3) but clears the benign
    image (0.2).  Patients 6–11: it finds the cancer (0.8) but calls the benign
    image malignant (0.7).  So each patient has exactly one image only ROI-aware
    gets right.  Baseline: sensitivity ½, specificity ½, AUC ¾; ROI-aware: 1, 1, 1.
    """
    images = []
    for i in range(12):
        first = i < 6
        images.append((f"m{i}", f"P{i}", 1, {"baseline": 0.3 if first else 0.8, "roi": 0.9}))
        images.append((f"b{i}", f"P{i}", 0, {"baseline": 0.2 if first else 0.7, "roi": 0.1}))
    return _table(images)


# ---------------------------------------------------------------- the sign-flip test

def test_sign_flip_p_by_hand_and_by_enumeration() -> None:
    # net d = (2, 1, −1): Σ ±d over the 8 flips = 4, 2, 2, 0, 0, −2, −2, −4; |·| ≥ 2 in 6
    assert sign_flip_p([2, 1, -1]) == pytest.approx(6 / 8)
    assert sign_flip_p([0, 0, 0]) == 1.0 and sign_flip_p([]) == 1.0
    assert sign_flip_p([1] * 8) == pytest.approx(2 / 2 ** 8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = rng.integers(-3, 4, int(rng.integers(1, 10)))
        sums = [abs(sum(s * x for s, x in zip(signs, d)))
                for signs in itertools.product((1, -1), repeat=len(d))]
        expected = np.mean([s >= abs(d.sum()) for s in sums])
        assert sign_flip_p(d) == pytest.approx(expected), d


def test_sign_flip_equals_mcnemar_with_one_image_per_patient() -> None:
    for b, c in ((10, 2), (0, 7), (3, 4), (30, 45)):
        a = [True] * b + [False] * c + [True] * 5
        other = [False] * b + [True] * c + [True] * 5
        test = clustered_discordance(a, other, np.arange(len(a)))
        assert (test["b"], test["c"], test["n_patients_net"]) == (b, c, b + c)
        assert test["p"] == pytest.approx(ev.mcnemar_exact(b, c), rel=1e-9)
    # One patient, one image for each grid: discordant images, no net difference.
    even = clustered_discordance([True, False], [False, True], ["P", "P"])
    assert (even["b"], even["c"], even["n_patients_net"], even["p"]) == (1, 1, 0, 1.0)


# ---------------------------------------------------------------- evaluate_predictions

def test_identical_grids_give_zero_deltas_and_p_one() -> None:
    table = _better_on_every_patient()
    base = table[table["mode"] == "baseline"]
    res = ev.evaluate_predictions(pd.concat([base, base.assign(mode="roi", cell="roi-RCC")]),
                                  n_boot=200)
    paired = res["paired"]
    assert paired["difference"] == "roi_aware minus baseline"
    assert (paired["n_images"], paired["n_patients"]) == (24, 12)
    for block in (paired, paired["tuned"]):
        for key in DELTA_KEYS:
            assert block[key] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}, key
    for at in ("at_0.5", "at_tuned"):
        assert paired["sign_flip"][at]["p"] == 1.0
        assert paired["sign_flip"][at]["n_patients_net"] == 0
        assert res["mcnemar"][at]["p"] == 1.0


def test_better_on_every_patient_gives_positive_intervals() -> None:
    res = ev.evaluate_predictions(_better_on_every_patient(), n_boot=1000, seed=3)
    paired = res["paired"]
    assert paired["delta_roc_auc"]["value"] == pytest.approx(1 - 0.75)
    assert paired["delta_sensitivity"]["value"] == pytest.approx(0.5)
    assert paired["delta_specificity"]["value"] == pytest.approx(0.5)
    # Whichever patients are drawn, sensitivity gains what specificity does not: ½ exactly.
    assert paired["delta_balanced_accuracy"] == pytest.approx(
        {"value": 0.5, "ci_low": 0.5, "ci_high": 0.5})
    for key in ("delta_sensitivity", "delta_specificity"):
        assert 0 < paired[key]["ci_low"] < paired[key]["value"] < paired[key]["ci_high"], key
    # Baseline AUC = 1 − (share of first-kind patients × share of the others): lowest, so
    # the gain highest, at an even draw; any other draw gains less, never nothing.
    auc = paired["delta_roc_auc"]
    assert 0 < auc["ci_low"] < auc["value"] and auc["ci_high"] == pytest.approx(0.25)
    test = paired["sign_flip"]["at_0.5"]
    assert (test["n_patients"], test["n_patients_net"], test["b"], test["c"]) == \
        (12, 12, 0, 12)
    assert test["p"] == pytest.approx(2 / 2 ** 12)  # only "all +" and "all −" reach |Σ d| = 12
    assert res["mcnemar"]["at_0.5"]["p"] == pytest.approx(2 / 2 ** 12)


def test_deltas_pair_the_resamples() -> None:
    """A patient effect shared by both grids cancels in the paired difference.

    40 patients (one malignant image each): 20 easy for both grids, 20 hard
    for both, and ROI-aware also finds the cancer of 8 hard ones.  The
    marginal intervals are wide and overlap; the paired one excludes 0,
    which only holds when both grids see the same resampled patients.
    """
    images = []
    for i in range(40):
        easy, rescued = i < 20, 20 <= i < 28
        images.append((f"m{i}", f"P{i}", 1, {"baseline": 0.9 if easy else 0.1,
                                              "roi": 0.9 if easy or rescued else 0.1}))
        images.append((f"b{i}", f"P{i}", 0, {"baseline": 0.1, "roi": 0.1}))
    res = ev.evaluate_predictions(_table(images), n_boot=1000, seed=1)
    base, roi = res["baseline"]["sensitivity"], res["roi_aware"]["sensitivity"]
    delta = res["paired"]["delta_sensitivity"]
    assert (base["value"], roi["value"]) == (0.5, 0.7)
    assert delta["value"] == pytest.approx(0.2)
    assert roi["ci_low"] < base["ci_high"]  # the marginal intervals overlap …
    assert delta["ci_low"] > 0.05  # … the paired one is well clear of 0
    width = {k: e["ci_high"] - e["ci_low"] for k, e in (("base", base), ("roi", roi),
                                                         ("delta", delta))}
    unpaired = (width["base"] ** 2 + width["roi"] ** 2) ** 0.5  # independent resamples
    assert width["delta"] < 0.8 * unpaired


def test_repeating_each_patients_images_shrinks_mcnemar_not_the_clustered_test() -> None:
    # 10 patients: 7 where only ROI-aware is right on their image, 3 where only baseline is.
    images = []
    for i in range(10):
        roi_wins = i < 7
        images.append((f"m{i}", f"P{i}", 1, {"baseline": 0.2 if roi_wins else 0.8,
                                              "roi": 0.8 if roi_wins else 0.2}))
        images.append((f"b{i}", f"P{i}", 0, {"baseline": 0.1, "roi": 0.1}))
    once = _table(images)
    k = 4
    repeated = pd.concat([once.assign(image_path=once["image_path"] + f"-copy{j}")
                          for j in range(k)])
    a = ev.evaluate_predictions(once, n_boot=300, seed=5)
    b = ev.evaluate_predictions(repeated, n_boot=300, seed=5)
    assert a["mcnemar"]["at_0.5"]["p"] == pytest.approx(ev.mcnemar_exact(3, 7))
    assert b["mcnemar"]["at_0.5"]["p"] == pytest.approx(ev.mcnemar_exact(3 * k, 7 * k))
    assert b["mcnemar"]["at_0.5"]["p"] < 0.05 < a["mcnemar"]["at_0.5"]["p"]
    flip_a, flip_b = a["paired"]["sign_flip"]["at_0.5"], b["paired"]["sign_flip"]["at_0.5"]
    assert flip_a["p"] == pytest.approx(ev.mcnemar_exact(3, 7))
    assert flip_b["p"] == pytest.approx(flip_a["p"])  # the same 10 patients, the same evidence
    assert (flip_b["n_pairs"], flip_b["b"], flip_b["c"]) == (20 * k, 3 * k, 7 * k)
    for key in DELTA_KEYS:  # patient resamples weigh a patient's copies together
        assert b["paired"][key] == pytest.approx(a["paired"][key]), key


def test_proposed_routing_gets_its_own_paired_block() -> None:
    table = _better_on_every_patient()
    assert "paired_proposed" not in ev.evaluate_predictions(table, n_boot=0)
    base = table[table["mode"] == "baseline"]
    with_proposed = pd.concat([table, base.assign(mode="roi_proposed", cell="noroi-RCC")])
    res = ev.evaluate_predictions(with_proposed, n_boot=100)
    proposed = res["paired_proposed"]
    assert proposed["difference"] == "roi_aware_proposed minus baseline"
    assert proposed["delta_sensitivity"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert proposed["sign_flip"]["at_0.5"]["p"] == 1.0
    assert res["paired"]["delta_sensitivity"]["value"] == pytest.approx(0.5)
    assert "proposed routing minus baseline" in ev.format_report(res)


def test_no_roi_aware_rows_means_no_paired_block() -> None:
    table = _better_on_every_patient()
    res = ev.evaluate_predictions(table[table["mode"] == "baseline"], n_boot=0)
    assert res["paired"] is None
    assert "Sign-flip exact (patient-level), baseline vs ROI-aware: –" in format_paper_table(res)


# ---------------------------------------------------------------- JSON, text, the Compare page

def _run(tmp_path: Path) -> Path:
    run = tmp_path / "checkpoints" / "paired-run"
    run.mkdir(parents=True)
    _better_on_every_patient().to_csv(run / "predictions.csv", index=False)
    (run / "run.json").write_text(json.dumps({
        "name": "paired-run", "dataset": "manifest", "arch": "resnet10t", "img_size": 64,
        "status": "complete", "synthetic": True, "modes": ["baseline", "roi"],
        "train_counts": {"benign": 20, "malignant": 20}}))
    return run


def test_metrics_json_and_text_carry_the_paired_block(tmp_path: Path) -> None:
    run = _run(tmp_path)
    result = ev.evaluate_run(run, n_boot=200)
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["paired"] == result["paired"]
    assert set(DELTA_KEYS) <= set(on_disk["paired"]) and set(DELTA_KEYS) == \
        set(on_disk["paired"]["tuned"])
    assert set(on_disk["paired"]["sign_flip"]) == {"at_0.5", "at_tuned"}
    assert "sign-flip" in on_disk["paired"]["sign_flip"]["at_0.5"]["test"]
    text = format_paper_table(result)
    assert "McNemar exact (image-level), baseline vs ROI-aware: p = < 0.001" in text
    assert "Sign-flip exact (patient-level), baseline vs ROI-aware: p = < 0.001 " \
           "(12 patients, 12 with a net difference)" in text
    assert "Paired difference, ROI-aware minus baseline" in text
    assert format_delta(result["paired"]["delta_balanced_accuracy"]) == "+0.50 [+0.50, +0.50]"
    assert format_delta({"value": -0.031, "ci_low": -0.1, "ci_high": 0.04}) == \
        "−0.03 [−0.10, +0.04]"


def test_compare_page_shows_both_tests_and_the_deltas(tmp_path: Path, monkeypatch) -> None:
    run = _run(tmp_path)
    ev.evaluate_run(run, n_boot=200)
    monkeypatch.setenv("MAMMOROUTE_CHECKPOINTS", str(run.parent))
    monkeypatch.setenv("MAMMOROUTE_DATA", str(tmp_path))
    at = AppTest.from_file(str(REPO / "pages" / "compare.py"), default_timeout=90)
    at.session_state["run_name"] = run.name
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(m.value for m in at.markdown)
    assert "McNemar exact test (image-level), baseline vs ROI-aware: **p = < 0.001**" in shown
    assert "Sign-flip exact test (patient-level), baseline vs ROI-aware: **p = < 0.001** " \
           "(12 patients, 12 with a net difference)" in shown
    assert "balanced accuracy +0.50 [+0.50, +0.50]" in shown


def test_paired_text_for_an_older_metrics_json() -> None:
    assert "python -m core evaluate checkpoints/old" in paired_text({"run": {"name": "old"}})
    assert delta_with_ci({"value": 0.2, "ci_low": None, "ci_high": None}) == "+0.20"
    assert delta_with_ci(None) == "–"
