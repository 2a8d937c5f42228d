"""core.evaluate: metric definitions, bootstrap CIs, McNemar, reference rows, JSON, CLI."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from core import evaluate as ev
from core.errors import CheckpointError

REPO = Path(__file__).resolve().parent.parent
VIEWS = ("RCC", "LCC", "RMLO", "LMLO")


def _rows(n_patients: int, seed: int = 0, prevalence: float = 0.2) -> pd.DataFrame:
    """A plausible long prediction table: 4 views per patient, both modes."""
    rng = np.random.default_rng(seed)
    rows = []
    for pi in range(n_patients):
        for view in VIEWS:
            label = int(rng.random() < prevalence)
            roi = bool(rng.random() < (0.9 if label else 0.15))
            for mode in ("baseline", "roi"):
                p = float(np.clip(rng.normal(0.3 + 0.4 * label, 0.2), 0, 1))
                cell = f"all-{view}" if mode == "baseline" else f"{'roi' if roi else 'noroi'}-{view}"
                rows.append(dict(image_path=f"img/p{pi}_{view}.dcm", patient_id=f"P{pi}",
                                 study_id=f"S{pi}", view=view, roi=roi, label=label, mode=mode,
                                 cell=cell, fallback=False, p_malignant=p, threshold=0.4))
    return pd.DataFrame(rows)


def _table(specs: list[tuple[str, str, bool, int, str, float]], threshold: float = 0.5) -> pd.DataFrame:
    """Rows from (image, patient, roi, label, mode, p); cell follows the routing rule."""
    rows = []
    for image, patient, roi, label, mode, p in specs:
        cell = "all-RCC" if mode == "baseline" else ("roi-RCC" if roi else "noroi-RCC")
        rows.append(dict(image_path=image, patient_id=patient, study_id=patient, view="RCC",
                         roi=roi, label=label, mode=mode, cell=cell, fallback=False,
                         p_malignant=p, threshold=threshold))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- metrics

def test_threshold_metrics_match_hand_computed_values() -> None:
    y = [1, 1, 1, 0, 0, 0, 0, 0]
    p = [1, 1, 0, 1, 0, 0, 0, 0]  # tp 2, fn 1, fp 1, tn 4
    assert ev.confusion_counts(y, p) == {"tn": 4, "fp": 1, "fn": 1, "tp": 2}
    assert ev.confusion_matrix(y, p).tolist() == [[4, 1], [1, 2]]
    assert ev.sensitivity(y, p) == pytest.approx(2 / 3)
    assert ev.specificity(y, p) == pytest.approx(4 / 5)
    assert ev.accuracy(y, p) == pytest.approx(6 / 8)
    assert ev.f1_malignant(y, p) == pytest.approx(4 / 6)
    # benign F1 = 8 / 10; weighted by support 3 and 5
    assert ev.f1_weighted(y, p) == pytest.approx((3 * 4 / 6 + 5 * 0.8) / 8)
    assert ev.balanced_accuracy(y, p) == pytest.approx((2 / 3 + 0.8) / 2)
    assert ev.f1_weighted(y, p) == pytest.approx(f1_score(y, p, average="weighted"))
    assert ev.f1_malignant(y, p) == pytest.approx(f1_score(y, p))
    assert ev.balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))


def test_f_score_definition_reproduces_every_paper_row() -> None:
    from core.evaluate.constants import F_SCORE_DEFINITION
    from core.evaluate.paper import PAPER_TEST_SETS

    rows = [(ds, arch, mode, table[mode]) for ds, by_arch in ev.PAPER_REPORTED.items()
            for arch, table in by_arch.items() for mode in ("baseline", "roi_aware")]
    assert len(rows) == 8
    for ds, arch, mode, printed in rows:
        pos, neg = PAPER_TEST_SETS[ds]["malignant"], PAPER_TEST_SETS[ds]["benign"]
        tp, tn = round(printed["sensitivity"] * pos), round(printed["specificity"] * neg)
        m = ev.metrics_from_counts(tp=tp, fn=pos - tp, tn=tn, fp=neg - tn)
        assert round(float(m["sensitivity"]), 2) == printed["sensitivity"]
        assert round(float(m[F_SCORE_DEFINITION]), 2) == printed["f_score"], (ds, arch, mode)


def test_f_sens_spec_is_the_harmonic_mean_of_sensitivity_and_specificity() -> None:
    y = [1, 1, 1, 0, 0, 0, 0, 0]
    p = [1, 1, 0, 1, 0, 0, 0, 0]  # sensitivity 2/3, specificity 4/5
    assert ev.f_sens_spec(y, p) == pytest.approx(2 * (2 / 3) * 0.8 / (2 / 3 + 0.8))
    assert ev.f_sens_spec([1, 0], [0, 0]) == 0.0  # sensitivity 0: the paper's baselines
    assert ev.f_sens_spec([1, 0], [1, 0]) == 1.0
    assert math.isnan(ev.f_sens_spec([0, 0], [0, 0]))  # no malignant image


def test_zero_denominators_give_nan() -> None:
    y = [0, 0, 0]
    p = [0, 0, 0]
    assert math.isnan(ev.sensitivity(y, p))
    assert ev.specificity(y, p) == 1.0
    assert math.isnan(ev.f1_malignant(y, p))
    assert ev.f1_weighted(y, p) == 1.0  # only the benign class has support
    assert math.isnan(ev.balanced_accuracy(y, p))
    assert math.isnan(ev.roc_auc(y, [0.1, 0.2, 0.3]))
    assert math.isnan(ev.accuracy([], []))


def test_roc_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    assert ev.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    pts = ev.roc_points(y, s)
    assert pts["fpr"][0] == 0.0 and pts["tpr"][-1] == 1.0 and len(pts["fpr"]) == len(pts["tpr"])


def test_training_scores_validation_with_evaluations_roc_auc() -> None:
    from core.train.metrics import auc_or_none

    y = np.array([0, 0, 1, 1, 0, 1], dtype=np.float32)  # the loop's float targets
    p = np.array([0.1, 0.4, 0.4, 0.8, 0.8, 0.9])  # ties across the classes count one half
    assert auc_or_none(y, p) == ev.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert auc_or_none(np.ones(3), [0.2, 0.5, 0.9]) is None  # one class: null, not NaN, in meta.json
    assert auc_or_none(np.array([]), np.array([])) is None
    assert math.isnan(ev.roc_auc([], []))
    assert ev.roc_auc([True, False], [0.9, 0.1]) == 1.0 and ev.roc_auc([1, 0], [0.1, 0.9]) == 0.0
    with pytest.raises(ValueError, match="0/1"):
        ev.roc_auc([0, 2], [0.1, 0.9])


def test_report_and_pages_share_one_number_format() -> None:
    from core.evaluate.report import format_p, format_value
    from ui.metrics_view import headline

    assert [format_p(p) for p in (None, 0.0, 0.000999, 0.001, 0.0456, 1.0)] == [
        "–", "< 0.001", "< 0.001", "0.001", "0.046", "1.000"]
    assert [format_value(x) for x in (None, 0.0, 0.875, 1.0)] == ["–", "0.00", "0.88", "1.00"]
    assert headline({"mcnemar": {"at_0.5": {"p": 0.0004}}})["McNemar p"] == "< 0.001"


# ---------------------------------------------------------------- McNemar

def test_mcnemar_exact_known_values() -> None:
    assert ev.mcnemar_exact(10, 2) == pytest.approx(0.0386, abs=5e-4)
    assert ev.mcnemar_exact(2, 10) == ev.mcnemar_exact(10, 2)
    assert ev.mcnemar_exact(0, 0) == 1.0
    assert ev.mcnemar_exact(5, 5) == 1.0
    a = [True] * 10 + [False] * 2 + [True] * 7
    b = [False] * 10 + [True] * 2 + [True] * 7
    assert ev.paired_mcnemar(a, b) == {"n_pairs": 19, "b": 10, "c": 2, "p": ev.mcnemar_exact(10, 2)}


def test_mcnemar_pairs_by_image_path_not_row_order() -> None:
    specs = []
    for i in range(12):  # baseline wrong on 12 malignant images, ROI-aware right on 10
        specs.append((f"m{i}", f"P{i}", True, 1, "baseline", 0.1))
        specs.append((f"m{i}", f"P{i}", True, 1, "roi", 0.9 if i < 10 else 0.1))
    df = _table(specs)
    shuffled = pd.concat([df[df["mode"] == "baseline"], df[df["mode"] == "roi"].iloc[::-1]])
    res = ev.evaluate_predictions(shuffled, n_boot=0)
    assert res["mcnemar"]["at_0.5"]["b"] == 0 and res["mcnemar"]["at_0.5"]["c"] == 10
    assert res["mcnemar_p"] == pytest.approx(ev.mcnemar_exact(0, 10))


# ---------------------------------------------------------------- bootstrap

def test_ci_contains_point_and_is_seeded() -> None:
    df = _rows(120, seed=1)
    a = ev.evaluate_predictions(df, n_boot=500, seed=7)
    b = ev.evaluate_predictions(df, n_boot=500, seed=7)
    c = ev.evaluate_predictions(df, n_boot=500, seed=8)
    for key in ("baseline", "roi_aware", "roi_presence_only"):
        for name in ev.METRIC_NAMES:
            e = a[key][name]
            assert e["ci_low"] <= e["value"] <= e["ci_high"], (key, name, e)
    assert a["baseline"] == b["baseline"] and a["tuned"] == b["tuned"]
    assert a["baseline"]["accuracy"] != c["baseline"]["accuracy"]


def test_bootstrap_resamples_patients_not_images() -> None:
    # 10 patients × 20 images: 5 patients always right, 5 always wrong.
    specs = []
    for pi in range(10):
        for k in range(20):
            label = k % 2
            right = pi < 5
            p = (0.9 if label else 0.1) if right else (0.1 if label else 0.9)
            specs.append((f"p{pi}_{k}", f"P{pi}", False, label, "baseline", p))
    clustered = _table(specs)
    independent = clustered.assign(patient_id=clustered["image_path"])
    wide = ev.evaluate_predictions(clustered, n_boot=1000)["baseline"]["accuracy"]
    narrow = ev.evaluate_predictions(independent, n_boot=1000)["baseline"]["accuracy"]
    assert wide["value"] == narrow["value"] == 0.5
    assert wide["ci_high"] - wide["ci_low"] > 0.4  # patient-level: ~±0.3
    assert narrow["ci_high"] - narrow["ci_low"] < 0.2  # image-level: ~±0.07


def test_patient_bootstrap_weights_shape_and_totals() -> None:
    w = ev.patient_bootstrap_weights(7, 50, seed=0)
    assert w.shape == (50, 7)
    assert (w.sum(axis=1) == 7).all()
    assert np.array_equal(w, ev.patient_bootstrap_weights(7, 50, seed=0))


def test_bootstrap_is_fast_enough() -> None:
    df = _rows(325, seed=2)  # 1,300 images, both modes
    ev.evaluate_predictions(df.head(40), n_boot=10)  # warm imports
    # CPU time, not wall time: other jobs on a shared machine must not fail this.
    t0 = time.process_time()
    ev.evaluate_predictions(df, n_boot=1000)
    assert time.process_time() - t0 < 1.5  # ~0.45 s CPU measured


# ---------------------------------------------------------------- reference rows, per-cell, tuned

def _reference_fixture() -> pd.DataFrame:
    # 4 malignant (3 with ROI), 6 benign (1 with ROI)
    specs = []
    for i, (roi, label) in enumerate([(True, 1)] * 3 + [(False, 1)] + [(True, 0)] + [(False, 0)] * 5):
        for mode in ("baseline", "roi"):
            specs.append((f"i{i}", f"P{i // 2}", roi, label, mode, 0.2))
    return _table(specs)


def test_roi_presence_only_row() -> None:
    res = ev.evaluate_predictions(_reference_fixture(), n_boot=0)
    row = res["roi_presence_only"]
    assert row["sensitivity"]["value"] == pytest.approx(3 / 4)
    assert row["specificity"]["value"] == pytest.approx(5 / 6)
    assert row["accuracy"]["value"] == pytest.approx(8 / 10)
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    roi = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert row["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, roi))
    assert res["confusion"]["roi_presence_only"]["at_0.5"] == {"tn": 5, "fp": 1, "fn": 1, "tp": 3}
    assert row["accuracy"]["ci_low"] is None  # n_boot=0: no interval


def test_majority_row_from_train_counts_or_test_set() -> None:
    df = _reference_fixture()
    test_based = ev.evaluate_predictions(df, n_boot=0)
    assert test_based["majority_class"] == {"label": "benign", "source": "test"}
    assert test_based["majority"]["accuracy"]["value"] == pytest.approx(0.6)
    assert test_based["majority"]["sensitivity"]["value"] == 0.0
    assert test_based["majority"]["roc_auc"]["value"] is None
    train_based = ev.evaluate_predictions(df, train_counts={"benign": 10, "malignant": 30}, n_boot=0)
    assert train_based["majority_class"] == {"label": "malignant", "source": "train"}
    assert train_based["majority"]["accuracy"]["value"] == pytest.approx(0.4)
    assert train_based["majority"]["sensitivity"]["value"] == 1.0


def test_per_cell_metrics_and_tuned_threshold() -> None:
    specs = [
        ("a", "P1", True, 1, "roi", 0.6), ("b", "P1", True, 0, "roi", 0.7),
        ("c", "P2", True, 1, "roi", 0.3), ("d", "P2", False, 0, "roi", 0.2),
        ("e", "P3", False, 1, "roi", 0.35), ("f", "P3", False, 0, "roi", 0.1),
    ]
    df = _table(specs, threshold=0.25)
    df.loc[df["image_path"] == "d", "fallback"] = True
    res = ev.evaluate_predictions(df, n_boot=0)
    cells = res["per_cell"]["roi_aware"]
    assert list(cells) == ["noroi-RCC", "roi-RCC"]  # grid order
    roi = cells["roi-RCC"]
    assert (roi["n"], roi["n_malignant"], roi["n_fallback"]) == (3, 2, 0)
    assert roi["sensitivity"] == pytest.approx(0.5) and roi["specificity"] == 0.0
    assert roi["auc"] == pytest.approx(roc_auc_score([1, 0, 1], [0.6, 0.7, 0.3])) == 0.0
    noroi = cells["noroi-RCC"]
    assert (noroi["n"], noroi["n_malignant"], noroi["n_fallback"]) == (3, 1, 1)
    assert noroi["sensitivity"] == 0.0 and noroi["specificity"] == 1.0 and noroi["auc"] == 1.0
    assert noroi["thresholds"] == [0.25]
    # at 0.5: predicted malignant a, b → tp 1, fp 1; tuned 0.25: a, b, c, e → tp 3, fp 1
    assert res["confusion"]["roi_aware"]["at_0.5"] == {"tn": 2, "fp": 1, "fn": 2, "tp": 1}
    assert res["confusion"]["roi_aware"]["at_tuned"] == {"tn": 2, "fp": 1, "fn": 0, "tp": 3}
    assert res["tuned"]["roi_aware"]["sensitivity"]["value"] == 1.0
    assert res["roi_aware"]["sensitivity"]["value"] == pytest.approx(1 / 3)
    assert res["baseline"]["accuracy"]["value"] is None  # no baseline rows
    assert res["mcnemar_p"] is None


def test_inconsistent_or_malformed_tables_are_checkpoint_errors() -> None:
    df = _reference_fixture()
    with pytest.raises(CheckpointError, match="missing column"):
        ev.evaluate_predictions(df.drop(columns=["threshold"]), source="x.csv")
    bad = df.copy()
    bad.loc[0, "label"] = 1 - bad.loc[0, "label"]
    with pytest.raises(CheckpointError, match="different label"):
        ev.evaluate_predictions(bad)
    with pytest.raises(CheckpointError, match="duplicate"):
        ev.evaluate_predictions(pd.concat([df, df.head(1)]))
    with pytest.raises(CheckpointError, match="mode"):
        ev.evaluate_predictions(df.assign(mode="other"))


# ---------------------------------------------------------------- run folders, JSON, text

def write_run(tmp_path: Path, synthetic: bool = True, cv: bool = True) -> Path:
    run = tmp_path / "checkpoints" / "demo"
    run.mkdir(parents=True)
    _rows(40, seed=4).to_csv(run / "predictions.csv", index=False)
    (run / "run.json").write_text(json.dumps({
        "dataset": "vindr", "arch": "swin", "img_size": 384, "synthetic": synthetic,
        "train_counts": {"benign": 300, "malignant": 60}, "cells": {"roi-RCC": {}}}))
    if cv:
        (run / "cv.json").write_text(json.dumps({
            "baseline": [{"fold": 0, "n": 50, "n_unserved": 0, "accuracy": 0.8, "roc_auc": None},
                         {"fold": 1, "n": 50, "n_unserved": 2, "accuracy": 0.9, "roc_auc": 0.7}],
            "roi": [{"fold": 0, "accuracy": 0.85, "auc": float("nan")}]}).replace("NaN", "null"))
    return run


def test_patient_ids_stay_text_so_007_and_7_are_two_clusters(tmp_path: Path) -> None:
    from core.evaluate.roifinder import read_proposals
    from core.evaluate.table import read_predictions

    df = _rows(2, seed=1)
    df["patient_id"] = df["patient_id"].map({"P0": "007", "P1": "7"})
    df["study_id"] = df["study_id"].map({"S0": "0042", "S1": "42"})
    df.to_csv(tmp_path / "predictions.csv", index=False)
    read = read_predictions(tmp_path / "predictions.csv")
    assert set(read["patient_id"]) == {"007", "7"} and set(read["study_id"]) == {"0042", "42"}
    result = ev.evaluate_predictions(read, n_boot=50)
    assert result["n_patients"] == 2  # pandas' guessing read both as the number 7: one cluster
    proposals = pd.DataFrame({
        "image_path": ["a.dcm", "b.dcm"], "patient_id": ["007", "7"], "label": [1, 0],
        "roi": [True, False], "roi_probability": [0.9, 0.1], "roi_present": [True, False],
        "boxes": ["[[0, 0, 4, 4]]", "[]"], "scores": ["[0.9]", "[]"], "truth_boxes": ["[]", "[]"]})
    proposals.to_csv(tmp_path / "roi_proposals.csv", index=False)
    assert read_proposals(tmp_path / "roi_proposals.csv")["patient_id"].tolist() == ["007", "7"]


def _no_nan(text: str) -> object:
    def reject(const: str) -> None:
        raise AssertionError(f"non-JSON constant {const}")
    return json.loads(text, parse_constant=reject)


def test_evaluate_run_writes_metrics_json_schema(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    result = ev.evaluate_run(run, n_boot=200)
    on_disk = _no_nan((run / "metrics.json").read_text())
    assert on_disk == result
    for key in ("baseline", "roi_aware", "roi_presence_only", "majority"):
        assert set(on_disk[key]) == set(ev.METRIC_NAMES)
        for entry in on_disk[key].values():
            assert set(entry) == {"value", "ci_low", "ci_high"}
    for key in ("mcnemar_p", "per_cell", "tuned", "confusion", "n_images", "n_patients", "roc"):
        assert key in on_disk
    assert on_disk["f_score_definition"] == "f_sens_spec"
    assert set(on_disk["tuned"]) == {"baseline", "roi_aware"}
    assert on_disk["n_images"] == 160 and on_disk["n_patients"] == 40
    assert on_disk["majority_class"]["source"] == "train"
    assert on_disk["run"]["dataset"] == "vindr" and "cells" not in on_disk["run"]
    assert on_disk["paper_reported"]["table"] == 5
    assert on_disk["cv"]["baseline"]["accuracy"]["mean"] == pytest.approx(0.85)
    assert on_disk["cv"]["baseline"]["accuracy"]["sd"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert on_disk["cv"]["roi_aware"]["accuracy"]["sd"] is None
    assert on_disk["cv"]["baseline"]["roc_auc"] == {"mean": 0.7, "sd": None, "n_folds": 1}
    assert "n" not in on_disk["cv"]["baseline"] and "n_unserved" not in on_disk["cv"]["baseline"]
    assert on_disk["majority"]["roc_auc"]["value"] is None
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_paper_table_text(tmp_path: Path) -> None:
    result = ev.evaluate_run(write_run(tmp_path), n_boot=100)
    text = ev.format_paper_table(result)
    assert text.splitlines()[0] == ev.SYNTHETIC_BANNER
    for needle in ("without ROI consideration (baseline)", "with ROI consideration (ROI-aware)",
                   "ROI presence only", "majority class", "F-score (2·sens·spec / (sens + spec)",
                   "F1 weighted (f1_weighted)", "F1 malignant (f1_malignant)", "Balanced accuracy", "ROC AUC",
                   "McNemar exact", "patient-level bootstrap", "Paper Table 5"):
        assert needle in text
    b = result["baseline"]["sensitivity"]
    assert ev.format_cell(b) in text
    assert ev.format_cell({"value": None, "ci_low": None, "ci_high": None}) == "–"
    assert ev.format_cell({"value": 0.874, "ci_low": 0.84, "ci_high": 0.9}) == "0.87 [0.84, 0.90]"
    assert "validation-tuned" in ev.format_report(result)
    real = dict(result, run={"name": "x", "synthetic": False})
    assert ev.SYNTHETIC_BANNER not in ev.format_paper_table(real)


def test_paper_reported_lookup() -> None:
    assert ev.PAPER_REPORTED["vindr"]["swin"]["roi_aware"]["f_score"] == 0.90
    assert ev.paper_reported("CDD-CESM", "convnextv2_atto")["table"] == 8
    assert ev.paper_reported("VinDr-Mammo", "swin_micro")["baseline"]["accuracy"] == 0.85
    assert ev.paper_reported("manifest", "swin") is None


def test_missing_predictions_is_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="predictions.csv"):
        ev.evaluate_run(tmp_path)
    (tmp_path / "predictions.csv").write_bytes(b"")
    with pytest.raises(CheckpointError, match="predictions.csv"):
        ev.evaluate_run(tmp_path)


# ---------------------------------------------------------------- command line

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", "evaluate", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_tables_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.__main__ import main

    run = write_run(tmp_path, cv=False)
    assert main(["evaluate", str(run), "--boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "with ROI consideration (ROI-aware)" in out and "Per cell" in out
    assert (run / "metrics.json").is_file()


def test_cli_json_subprocess(tmp_path: Path) -> None:
    run = write_run(tmp_path, cv=False)
    out = _cli(str(run), "--json", "--boot", "50")
    assert out.returncode == 0, out.stderr
    data = _no_nan(out.stdout)
    assert data["bootstrap"]["n_boot"] == 50 and "roi_aware" in data


def test_cli_missing_predictions_is_one_error_line(tmp_path: Path) -> None:
    out = _cli(str(tmp_path))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "predictions.csv" in lines[0]
    assert "Traceback" not in out.stderr


def test_roc_points_match_sklearn() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.4 * y, 2)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=True)
    pts = ev.roc_points(y, s)
    np.testing.assert_allclose(pts["fpr"], fpr, atol=1e-6)
    np.testing.assert_allclose(pts["tpr"], tpr, atol=1e-6)
    assert ev.roc_points([0, 0], [0.1, 0.2]) == {"fpr": [], "tpr": []}


def test_mcnemar_matches_scipy_binomtest() -> None:
    from scipy.stats import binomtest

    for b, c in ((10, 2), (0, 7), (30, 45), (400, 350)):
        assert ev.mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
