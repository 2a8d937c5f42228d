"""Breast-level results: a hand-computed table, the rules, the JSON and the Compare table.

The table: 3 patients, 6 breasts of two views each.  ``p`` is P(malignant),
``t`` the serving cell's tuned threshold, ``y`` the image label, ``roi`` the
annotation.

    breast      view  y  roi  baseline p (t)   ROI-aware p (t)
    B1 P1-R     RCC   1  yes  0.90 (0.5)       0.95 (0.5)
                RMLO  1  no   0.05 (0.5)       0.30 (0.5)
    B2 P1-L     LCC   0  no   0.60 (0.7)       0.20 (0.5)
                LMLO  0  no   0.60 (0.7)       0.10 (0.5)
    B3 P2-R     RCC   0  no   0.22 (0.2)       0.10 (0.5)
                RMLO  0  yes  0.24 (0.3)       0.10 (0.5)
    B4 P2-L     LCC   1  yes  0.40 (0.35)      0.80 (0.5)
                LMLO  0  no   0.30 (0.5)       0.20 (0.5)
    B5 P3-R     RCC   0  no   0.10 (0.5)       0.10 (0.5)
                RMLO  0  no   0.20 (0.5)       0.10 (0.5)
    B6 P3-L     LCC   1  no   0.70 (0.5)       0.90 (0.5)
                LMLO  1  yes  0.80 (0.5)       0.60 (0.5)

Breast labels (any image malignant): B1 1, B2 0, B3 0, B4 1 (mixed: LMLO is
benign), B5 0, B6 1.

Baseline, at 0.5 (any view ≥ 0.5): B1 1, B2 1, B3 0, B4 0, B5 0, B6 1
→ TP 2 (B1, B6), FN 1 (B4), FP 1 (B2), TN 2: sensitivity 2/3, specificity 2/3.
Baseline, tuned (any view ≥ its own t): B1 1, B2 0 (0.6 < 0.7), B3 1 (0.22 ≥ 0.2,
although its maximum 0.24 < its own 0.3), B4 1 (0.40 ≥ 0.35), B5 0, B6 1
→ TP 3, FN 0, FP 1 (B3), TN 2: sensitivity 1, specificity 2/3.
Baseline AUC by the maximum: malignant 0.9, 0.4, 0.8 vs benign 0.6, 0.24, 0.2:
0.9 and 0.8 beat all three, 0.4 beats two → 8/9.  By the mean it would be
malignant 0.475, 0.35, 0.75 vs benign 0.6, 0.23, 0.15 → 2 + 2 + 3 = 7/9, and
B1 (mean 0.475) would not be called at 0.5.
ROI-aware: every breast right at 0.5 and tuned, AUC 1.
Paired, ROI-aware minus baseline, at 0.5: Δsensitivity +1/3, Δspecificity +1/3,
ΔAUC +1/9; tuned: Δsensitivity 0, Δspecificity +1/3.  Sign-flip at 0.5: only
ROI-aware right on B2 (P1) and B4 (P2), nothing on P3 → net (1, 1, 0),
p = 2/4 (sums ±2 in two of the four flips).
ROI presence only (any view with an ROI): B1, B3, B4, B6 → TP 3, FP 1 (B3),
TN 2: sensitivity 1, specificity 2/3.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import evaluate as ev
from core.errors import CheckpointError
from core.evaluate.breast import BREAST_RULES, breasts_of
from core.evaluate.report import format_cell, format_report
from core.evaluate.roc import roc_auc
from ui.metrics_view import breast_table, paper_table

# (breast, patient, view, label, roi, baseline (p, t), ROI-aware (p, t))
HAND = [
    ("B1", "P1", "RCC", 1, True, (0.90, 0.5), (0.95, 0.5)),
    ("B1", "P1", "RMLO", 1, False, (0.05, 0.5), (0.30, 0.5)),
    ("B2", "P1", "LCC", 0, False, (0.60, 0.7), (0.20, 0.5)),
    ("B2", "P1", "LMLO", 0, False, (0.60, 0.7), (0.10, 0.5)),
    ("B3", "P2", "RCC", 0, False, (0.22, 0.2), (0.10, 0.5)),
    ("B3", "P2", "RMLO", 0, True, (0.24, 0.3), (0.10, 0.5)),
    ("B4", "P2", "LCC", 1, True, (0.40, 0.35), (0.80, 0.5)),
    ("B4", "P2", "LMLO", 0, False, (0.30, 0.5), (0.20, 0.5)),
    ("B5", "P3", "RCC", 0, False, (0.10, 0.5), (0.10, 0.5)),
    ("B5", "P3", "RMLO", 0, False, (0.20, 0.5), (0.10, 0.5)),
    ("B6", "P3", "LCC", 1, False, (0.70, 0.5), (0.90, 0.5)),
    ("B6", "P3", "LMLO", 1, True, (0.80, 0.5), (0.60, 0.5)),
]


def _hand_table(proposed: bool = False) -> pd.DataFrame:
    rows = []
    for _, patient, view, label, roi, base, aware in HAND:
        modes = [("baseline", f"all-{view}", base),
                 ("roi", f"{'roi' if roi else 'noroi'}-{view}", aware)]
        if proposed:  # the finder proposes nothing: every view goes to "without ROI"
            modes.append(("roi_proposed", f"noroi-{view}", (base[0] / 2, 0.5)))
        for mode, cell, (p, t) in modes:
            rows.append(dict(image_path=f"{patient}_{view}.dcm", patient_id=patient,
                             study_id=f"S-{patient}", view=view, roi=roi, label=label,
                             mode=mode, cell=cell, fallback=False, p_malignant=p, threshold=t))
    return pd.DataFrame(rows)


def _value(block: dict, metric: str) -> float | None:
    return block[metric]["value"]


def test_breast_table_by_hand() -> None:
    level = ev.evaluate_predictions(_hand_table(), n_boot=0)["breast_level"]
    assert (level["n_breasts"], level["n_patients"], level["n_malignant"]) == (6, 3, 3)
    assert level["n_breasts_mixed_label"] == 1  # B4
    assert level["rules"] == BREAST_RULES
    base, tuned = level["baseline"], level["tuned"]["baseline"]
    assert level["confusion"]["baseline"] == {
        "at_0.5": {"tn": 2, "fp": 1, "fn": 1, "tp": 2}, "at_tuned": {"tn": 2, "fp": 1, "fn": 0, "tp": 3}}
    assert _value(base, "sensitivity") == pytest.approx(2 / 3)
    assert _value(base, "specificity") == pytest.approx(2 / 3)
    assert _value(base, "accuracy") == pytest.approx(4 / 6)
    assert _value(tuned, "sensitivity") == pytest.approx(1.0)
    assert _value(tuned, "specificity") == pytest.approx(2 / 3)
    assert _value(base, "roc_auc") == pytest.approx(8 / 9)
    assert _value(tuned, "roc_auc") == pytest.approx(8 / 9)  # AUC does not depend on the threshold
    aware = level["roi_aware"]
    for metric in ("sensitivity", "specificity", "accuracy", "roc_auc"):
        assert _value(aware, metric) == pytest.approx(1.0), metric
        assert _value(level["tuned"]["roi_aware"], metric) == pytest.approx(1.0), metric
    presence = level["roi_presence_only"]
    assert _value(presence, "sensitivity") == pytest.approx(1.0)
    assert _value(presence, "specificity") == pytest.approx(2 / 3)
    assert level["confusion"]["roi_presence_only"]["at_0.5"] == {"tn": 2, "fp": 1, "fn": 0, "tp": 3}
    assert "roi_presence_only" not in level["tuned"]  # a reference row has no threshold
    # majority class of the test images (7 benign of 12) is benign: every breast called benign
    assert _value(level["majority"], "specificity") == pytest.approx(1.0)
    assert _value(level["majority"], "sensitivity") == pytest.approx(0.0)
    assert "roi_aware_proposed" not in level and "paired_proposed" not in level


def test_breast_probability_is_the_maximum_not_the_mean() -> None:
    table = _hand_table()
    base = table[table["mode"] == "baseline"].assign(laterality=lambda d: d["view"].str[0])
    breasts = breasts_of(base)
    assert breasts["p_max"].tolist() == pytest.approx([0.6, 0.9, 0.4, 0.24, 0.8, 0.2])
    assert breasts["call_05"].tolist() == [True, True, False, False, True, False]
    # The mean would rank and call differently (docstring): AUC 7/9 and B1 not called.
    mean = base.groupby(["patient_id", "study_id", "laterality"])["p_malignant"].mean()
    assert roc_auc(breasts["label"], mean.to_numpy()) == pytest.approx(7 / 9)
    assert mean.loc[("P1", "S-P1", "R")] < 0.5
    level = ev.evaluate_predictions(table, n_boot=0)["breast_level"]
    assert level["baseline"]["roc_auc"]["value"] == pytest.approx(8 / 9)
    assert level["confusion"]["baseline"]["at_0.5"]["tp"] == 2  # B1 counts as found


def test_paired_breast_differences_by_hand() -> None:
    paired = ev.evaluate_predictions(_hand_table(), n_boot=0)["breast_level"]["paired"]
    assert (paired["n_breasts"], paired["n_patients"]) == (6, 3)
    assert paired["difference"] == "roi_aware minus baseline"
    assert paired["delta_sensitivity"]["value"] == pytest.approx(1 / 3)
    assert paired["delta_specificity"]["value"] == pytest.approx(1 / 3)
    assert paired["delta_roc_auc"]["value"] == pytest.approx(1 / 9)
    assert paired["tuned"]["delta_sensitivity"]["value"] == pytest.approx(0.0)
    assert paired["tuned"]["delta_specificity"]["value"] == pytest.approx(1 / 3)
    test = paired["sign_flip"]["at_0.5"]
    assert (test["b"], test["c"], test["n_patients"], test["n_patients_net"]) == (0, 2, 3, 2)
    assert test["p"] == pytest.approx(0.5)


def test_proposed_routing_is_scored_and_paired() -> None:
    level = ev.evaluate_predictions(_hand_table(proposed=True), n_boot=0)["breast_level"]
    # proposed p = baseline p / 2 at threshold 0.5: every view is below 0.5 (at most 0.45),
    # so no breast is called
    assert level["confusion"]["roi_aware_proposed"]["at_0.5"] == {"tn": 3, "fp": 0, "fn": 3, "tp": 0}
    assert level["paired_proposed"]["delta_sensitivity"]["value"] == pytest.approx(0 - 2 / 3)
    assert level["paired_proposed"]["difference"] == "roi_aware_proposed minus baseline"
    assert level["roi_aware_proposed"]["roc_auc"]["value"] == pytest.approx(8 / 9)  # same order


def test_one_view_per_breast_equals_image_level_with_the_same_patient_resamples() -> None:
    """With one image per breast the breast is the image, so every value and every CI must
    equal the image level's: the breast level resamples the same patients, not breasts."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(30):
        for view in ("RCC", "LCC"):
            label = int(rng.random() < 0.3)
            roi = bool(rng.random() < (0.8 if label else 0.2))
            for mode in ("baseline", "roi"):
                rows.append(dict(image_path=f"p{i}_{view}", patient_id=f"P{i}", study_id=f"S{i}",
                                 view=view, roi=roi, label=label, mode=mode,
                                 cell=f"{'roi' if roi else 'noroi'}-{view}", fallback=False,
                                 p_malignant=float(np.clip(rng.normal(0.3 + 0.4 * label, 0.2), 0, 1)),
                                 threshold=float(rng.choice([0.3, 0.5]))))
    result = ev.evaluate_predictions(pd.DataFrame(rows), n_boot=200, seed=5)
    level = result["breast_level"]
    for key in ("baseline", "roi_aware", "roi_presence_only", "majority"):
        assert level[key] == result[key], key
    for key in ("baseline", "roi_aware"):
        assert level["tuned"][key] == result["tuned"][key], key
    for key in ("delta_roc_auc", "delta_sensitivity", "delta_specificity", "tuned", "sign_flip"):
        assert level["paired"][key] == result["paired"][key], key
    assert level["baseline"]["sensitivity"]["ci_low"] < level["baseline"]["sensitivity"]["ci_high"]


def test_unknown_view_is_a_checkpoint_error() -> None:
    table = _hand_table()
    table.loc[0, "view"] = "XCC"
    table.loc[1, "view"] = "XCC"
    with pytest.raises(CheckpointError, match="view"):
        ev.evaluate_predictions(table, n_boot=0)


def test_metrics_json_and_compare_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _hand_table().to_csv(run / "predictions.csv", index=False)
    ev.evaluate_run(run, n_boot=50)
    stored = json.loads((run / "metrics.json").read_text(encoding="utf-8"),
                        parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    level = stored["breast_level"]
    assert level["baseline"]["roc_auc"]["value"] == pytest.approx(8 / 9)
    assert level["paired"]["delta_roc_auc"]["value"] == pytest.approx(1 / 9)
    table = breast_table(stored, tuned=True)
    assert table.index.tolist() == paper_table(level, tuned=True).index.tolist()
    assert "without ROI consideration (baseline)" in table.index
    assert not any("paper" in name for name in table.index)  # the paper is image-level only
    assert table.loc["without ROI consideration (baseline)", "Sensitivity"].startswith("1.00")
    assert breast_table({"n_images": 1}, tuned=False).empty  # an older metrics.json
    text = format_report(stored)
    breast_line = next(line for line in text.splitlines()
                       if line.strip().startswith("without ROI consideration (baseline)")
                       and "roc_auc" in line)
    assert f"roc_auc {format_cell(level['baseline']['roc_auc'])}" in breast_line
    assert "0.89 [" in breast_line  # 8/9
    assert np.isfinite(level["baseline"]["specificity"]["ci_low"])  # CIs were computed
