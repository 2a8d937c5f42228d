"""Calibrated probabilities and readable calls: temperature scaling, ECE / Brier, the
evaluate JSON's calibration block, the predictor's use of T, and the wording rules."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.errors import CheckpointError
from core.evaluate.calibration import (
    brier_score,
    expected_calibration_error,
    fit_calibration,
    reliability_curve,
    scaled_probability,
)
from core.review.readout import shown_call, threshold_sentence
from helpers import write_meta

pytestmark = pytest.mark.usefixtures("one_thread")


def _overconfident_table(n: int = 4000, factor: float = 4.0, seed: int = 7):
    """Labels drawn from sigmoid(z); the model reports ``factor * z`` (over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return factor * z, y


# ------------------------------------------------------------------ the maths

def test_temperature_scaling_lowers_the_ece_on_a_fixed_table():
    logits, y = _overconfident_table()
    before = expected_calibration_error(scaled_probability(logits, 1.0), y)
    t = fit_calibration(logits, y).temperature
    after = expected_calibration_error(scaled_probability(logits, t), y)
    assert t > 1.0
    assert before > 0.10 and after < before - 0.08 and after < 0.03
    assert brier_score(scaled_probability(logits, t), y) < brier_score(
        scaled_probability(logits, 1.0), y)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_calibration_recovers_a_known_temperature(true_t):
    logits, y = _overconfident_table(n=20000, factor=true_t, seed=3)
    fitted = fit_calibration(logits, y)
    assert fitted.temperature == pytest.approx(true_t, rel=0.06)
    assert fitted.offset == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("true_t,shift", [(1.0, 1.7), (2.0, 1.0)])
def test_fit_calibration_takes_back_a_class_balanced_shift(true_t, shift):
    """A class-balanced loss (pos_weight 5.7 at 15 % prevalence) lifts every logit by about
    log 5.7 = 1.7: no temperature can undo that, the fitted offset does."""
    rng = np.random.default_rng(5)
    z = rng.normal(-2.0, 1.5, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    logits = true_t * z + shift
    fitted = fit_calibration(logits, y)
    assert fitted.temperature == pytest.approx(true_t, rel=0.06)
    assert fitted.offset == pytest.approx(shift, abs=0.1)
    best_t_only = min(expected_calibration_error(scaled_probability(logits, t), y)
                      for t in np.geomspace(0.05, 20, 200))
    assert expected_calibration_error(fitted.probability(logits), y) < 0.02 < best_t_only


def test_fit_calibration_edges():
    one_class = fit_calibration([1.0, 2.0, -1.0], [1, 1, 1])  # nothing to fit
    assert (one_class.temperature, one_class.offset) == (1.0, 0.0)
    assert fit_calibration([], []) == fit_calibration([0.0], [0])
    # a small, perfectly separated carve: the likelihood alone wants T -> 0 (p of 0 and 1);
    # the prior keeps the sharpening moderate
    separable = fit_calibration([-3.0, -2.0, 2.0, 3.0], [0, 0, 1, 1])
    assert 0.3 < separable.temperature < 1.0 and abs(separable.offset) < 0.1


def test_ece_brier_and_curve_by_hand():
    p = [0.05, 0.15, 0.15, 0.95]
    y = [0, 1, 0, 1]
    # bins: [0, .1): gap .05 (1 image); [.1, .2): mean .15 vs .5 → .35 (2); [.9, 1]: .05 (1)
    assert expected_calibration_error(p, y) == pytest.approx((0.05 + 2 * 0.35 + 0.05) / 4)
    assert brier_score(p, y) == pytest.approx((0.0025 + 0.7225 + 0.0225 + 0.0025) / 4)
    curve = reliability_curve(p, y)
    assert curve["bin_low"] == [0.0, 0.1, 0.9] and curve["n"] == [1, 2, 1]
    assert curve["frac_malignant"] == [0.0, 0.5, 1.0]
    # bin edges: 0.1 opens the second bin, 1.0 closes the last
    assert reliability_curve([0.1, 1.0], [0, 1])["bin_low"] == [0.1, 0.9]
    assert math.isnan(expected_calibration_error([], []))


def test_scaled_probability_is_stable_and_monotone():
    with np.errstate(over="raise", invalid="raise"):  # no overflow or NaN on huge logits
        p = scaled_probability([-3000.0, -1.0, 0.0, 1.0, 3000.0], 2.0)
    assert p[0] == 0.0 and p[-1] == 1.0 and p[2] == 0.5
    assert p[3] == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert np.all(np.diff(p) > 0)


# ------------------------------------------------------------------ evaluate --json

def _table(with_raw: bool) -> pd.DataFrame:
    p = [0.05, 0.15, 0.15, 0.95]
    y = [0, 1, 0, 1]
    rows = []
    for mode, probs in (("baseline", p), ("roi", [0.5, 0.5, 0.5, 0.5])):
        for i in range(4):
            row = {"image_path": f"img{i}.png", "patient_id": f"p{i}", "study_id": f"s{i}",
                   "view": "RCC", "roi": i % 2 == 0, "label": y[i], "mode": mode,
                   "cell": "all-RCC" if mode == "baseline" else "roi-RCC", "fallback": False,
                   "p_malignant": probs[i], "threshold": 0.5}
            if with_raw:
                row["p_uncalibrated"] = 1.0 if y[i] == 0 else 0.0  # as wrong as can be
                row["temperature"] = 2.0
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("with_raw", [False, True])
def test_evaluate_json_has_the_calibration_block(tmp_path, capsys, with_raw):
    from core.__main__ import main

    run = tmp_path / "run"
    run.mkdir()
    _table(with_raw).to_csv(run / "predictions.csv", index=False)
    assert main(["evaluate", str(run), "--json", "--boot", "0"]) == 0
    cal = json.loads(capsys.readouterr().out)["calibration"]
    assert cal["bins"] == 10
    assert cal["baseline"]["ece"] == pytest.approx(0.2)
    assert cal["baseline"]["brier"] == pytest.approx(0.1875)
    assert cal["baseline"]["n"] == 4
    assert cal["roi_aware"]["ece"] == pytest.approx(0.0)  # 0.5 for two of four cancers
    assert cal["roi_aware"]["brier"] == pytest.approx(0.25)
    if with_raw:
        assert cal["baseline"]["uncalibrated"] == {"ece": pytest.approx(1.0),
                                                   "brier": pytest.approx(1.0)}
    else:
        assert "uncalibrated" not in cal["baseline"]
    assert json.loads((run / "metrics.json").read_text())["calibration"]["baseline"]["n"] == 4


# ------------------------------------------------------------------ the predictor

def _biased_run(root: Path, bias: float, temperatures: dict[str, object]) -> Path:
    """A baseline-only run whose models output ``bias`` for any image (head zeroed)."""
    from core.grid import plan
    from core.models import create_model, save_weights
    from core.pixels.spec import PreprocessParams

    torch.manual_seed(0)
    model = create_model("resnet10t", 32)
    head = model.backbone.get_classifier()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(bias)
    cells = {}
    for cell in plan("baseline"):
        sha = save_weights(model, root / cell.name / "weights.safetensors")
        meta = {"threshold": 0.6}
        if cell.name in temperatures:
            meta["temperature"] = temperatures[cell.name]
        cells[cell.name] = {"status": "done", "sha256": sha,
                            "meta_sha256": write_meta(root / cell.name, meta)}
    (root / "run.json").write_text(json.dumps({
        "arch": "resnet10t", "img_size": 32, "modes": ["baseline"], "cells": cells,
        "preprocess": PreprocessParams(32, crop=False).to_json()}))
    return root


def test_predictor_applies_the_cell_temperature(tmp_path):
    from core.predict import Predictor, ViewInput, predict_manifest

    run = _biased_run(tmp_path / "run", 2.0, {"all-RCC": 2.0})  # the others: older runs, no T
    predictor = Predictor(run)
    assert {n: c.temperature for n, c in predictor.calibrations.items()} == {
        "all-RCC": 2.0, "all-LCC": 1.0, "all-RMLO": 1.0, "all-LMLO": 1.0}
    img = (np.random.default_rng(0).random((48, 40)) * 255).astype(np.uint8)
    out = predictor.predict_study([ViewInput(name="a", pixels=img, view="RCC"),
                                   ViewInput(name="b", pixels=img, view="LCC")])
    assert out[0].p_malignant_baseline == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-6)
    assert out[1].p_malignant_baseline == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)
    cams = predictor.predict_study([ViewInput(name="a", pixels=img, view="RCC")], cam=True)
    assert cams[0].p_malignant_baseline == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-6)

    import cv2
    cv2.imwrite(str(tmp_path / "x.png"), img)
    manifest = pd.DataFrame({"image_path": [str(tmp_path / "x.png")], "patient_id": ["p"],
                             "study_id": ["s"], "view_name": ["RCC"], "roi": [False],
                             "label": ["benign"]})
    row = predict_manifest(predictor, manifest).iloc[0]
    assert row["p_malignant"] == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-6)
    assert row["p_uncalibrated"] == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)
    assert row["temperature"] == 2.0


@pytest.mark.parametrize("bad", [0, -1.5, "warm"])
def test_a_bad_temperature_is_refused_naming_the_file(tmp_path, bad):
    from core.predict import Predictor

    run = _biased_run(tmp_path / "run", 0.0, {"all-LMLO": bad})
    with pytest.raises(CheckpointError) as err:
        Predictor(run)
    assert "temperature" in str(err.value) and "all-LMLO" in str(err.value)


# ------------------------------------------------------------------ training writes T

def test_training_fits_t_and_states_the_threshold(tmp_path):
    from test_train import tiny, write_blobs

    from core.train import train_grid

    out = tmp_path / "run"
    train_grid(write_blobs(tmp_path / "blobs", 40, 12), out, tiny(epochs=2))
    meta = json.loads((out / "all-RCC" / "meta.json").read_text())
    assert meta["temperature"] > 0 and meta["calibration_scope"] == "grid"
    info = json.loads((out / "run.json").read_text())
    grid = info["calibration"]["baseline"]
    assert (meta["temperature"], meta["logit_offset"]) == (grid["temperature"], grid["logit_offset"])
    c = meta["threshold_counts"]
    assert c["tp"] + c["fn"] + c["tn"] + c["fp"] == meta["n_val"]
    assert meta["threshold_sensitivity"] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
    assert meta["threshold_specificity"] == pytest.approx(c["tn"] / (c["tn"] + c["fp"]))
    half = meta["threshold_counts_at_0.5"]  # so p >= 0.5 can be stated by what it caught
    assert sum(half.values()) == meta["n_val"] and half["tp"] + half["fn"] == c["tp"] + c["fn"]
    assert meta["val_ece_scaled"] <= meta["val_ece_unscaled"] + 0.05
    run_cell = json.loads((out / "run.json").read_text())["cells"]["all-RCC"]
    assert run_cell["temperature"] == meta["temperature"]
    pred = pd.read_csv(out / "predictions.csv")
    raw = np.clip(pred["p_uncalibrated"].to_numpy(), 1e-12, 1 - 1e-12)
    logit = np.log(raw) - np.log1p(-raw)
    assert np.allclose(pred["p_malignant"],
                       scaled_probability(logit, meta["temperature"], meta["logit_offset"]),
                       atol=1e-6)
    assert "calibration" in json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------------ readable calls

def _number(text: str) -> float:
    return float(text.removesuffix(" %"))


def _contradicts(call) -> bool:
    shown_p, shown_t = _number(call.probability), _number(call.threshold)
    return (shown_p < shown_t) if call.malignant else (shown_p >= shown_t)


@pytest.mark.parametrize("p,t,expected", [
    (0.40, 0.72, ("40 %", "72 %", False)),
    (0.7249, 0.72, ("72.5 %", "72.0 %", True)),
    (0.716, 0.72, ("71.6 %", "72.0 %", False)),
    (0.7199, 0.72, ("71.99 %", "72.00 %", False)),   # the "72 % → benign · 72 %"
    (0.71999999999, 0.72, ("71.99 %", "72.00 %", False)),  # rounded down / up at the last step
    (0.72, 0.72, ("72.00 %", "72.00 %", True)),     # equal is malignant: ≥
    (0.72000000001, 0.72, ("72.00 %", "72.00 %", True)),
    (0.0, 0.0, ("0.00 %", "0.00 %", True)),
    (0.99999, 1.0, ("99.99 %", "100.00 %", False)),
])
def test_shown_call_at_the_edge(p, t, expected):
    call = shown_call(p, t)
    assert (call.probability, call.threshold, call.malignant) == expected
    assert not _contradicts(call)


def test_shown_call_never_contradicts_near_the_threshold():
    rng = np.random.default_rng(0)
    t = rng.random(3000)
    p = np.clip(t + rng.normal(0, 1e-3, 3000) * rng.choice([1, 1e-3, 1e-9], 3000), 0, 1)
    for pi, ti in zip(p, t):
        call = shown_call(pi, ti)
        assert call.malignant == (pi >= ti)
        assert not _contradicts(call), (pi, ti, call)
    assert shown_call(0.6).threshold == "50 %"  # no threshold: 0.5


def test_threshold_sentence_reads_at_a_glance():
    meta = {"threshold": 0.37, "threshold_source": "val", "val_auc": 0.91,
            "threshold_counts": {"tp": 9, "fn": 1, "tn": 85, "fp": 15}}
    assert threshold_sentence(meta) == (
        "called malignant at ≥ 37 % (on validation this caught 9 of 10 cancers, 90 % "
        "sensitivity, and cleared 85 % of 100 benign images)")
    assert threshold_sentence(meta, 0.37, "37.0 %").startswith("called malignant at ≥ 37.0 %")
    flat = {**meta, "threshold": 0.999, "threshold_counts": {"tp": 0, "fn": 3, "tn": 20, "fp": 0}}
    assert "Uninformative" in threshold_sentence(flat) and "100 %" in threshold_sentence(flat)
    assert "no better than chance" in threshold_sentence({**meta, "val_auc": 0.45})
    assert threshold_sentence({}, 0.5) == ("called malignant at ≥ 50 % (no validation figures "
                                          "recorded for this model)")


def test_breast_call_follows_its_deciding_view():
    from core.predict import ViewResult
    from core.review.report import breast_summary, view_call

    results = [ViewResult(image="a", view="RCC", p_malignant_baseline=0.22, threshold_baseline=0.20),
               ViewResult(image="b", view="RMLO", p_malignant_baseline=0.10, threshold_baseline=0.30),
               ViewResult(image="c", view="LCC", p_malignant_baseline=0.24, threshold_baseline=0.30),
               ViewResult(image="d", view="LMLO", p_malignant_baseline=0.05, threshold_baseline=0.30)]
    right, left = breast_summary(results, lambda r, g: view_call(r, g, {}, "tuned"))
    assert (right["call_baseline"].word, right["view_baseline"],
            right["call_baseline"].probability) == ("malignant", "RCC", 0.22)
    assert (left["call_baseline"].word, left["view_baseline"],
            left["call_baseline"].probability) == ("benign", "LCC", 0.24)
    assert right["call_roi_aware"] is None
