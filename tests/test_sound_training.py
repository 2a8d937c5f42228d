"""Training soundness: one validation carve per run, split records and their checker, the
dataset hash over everything that routes, per-grid calibration, the benchmark's figures."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from test_train import write_blobs

from core.errors import TrainingError
from core.runfolder import layout as runs
from core.runfolder.splits import leaks, read_split, write_split
from core.train import CellResult, train_grid
from helpers import stripes_over_two_views, warm_start_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MAMMOROUTE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))




# ------------------------------------------------------------------ one carve per run

def test_no_model_is_validated_on_patients_it_or_its_start_trained_on(tmp_path):
    manifest = stripes_over_two_views(write_blobs(tmp_path / "blobs", 64, 8))
    out = tmp_path / "run"
    train_grid(manifest, out, warm_start_config())
    pooled = read_split(out / "pooled")
    cells = {c: read_split(out / c) for c in ("all-RCC", "all-LCC")}
    assert pooled["validation"]["patients"] and pooled["started_from"] is None
    cell_val = set()
    for record in cells.values():
        assert record["started_from"] == "pooled"
        cell_val |= set(record["validation"]["patients"])
    # every cell's validation patients are the run's, none trained the pooled model
    assert cell_val and cell_val <= set(pooled["validation"]["patients"])
    assert not cell_val & set(pooled["train"]["patients"])
    assert leaks(out) == []
    # an older run, carved once per model, is not continued
    info = json.loads((out / runs.RUN_FILE).read_text())
    del info["validation_rule"]
    (out / runs.RUN_FILE).write_text(json.dumps(info))
    with pytest.raises(TrainingError, match="carved under another rule"):
        train_grid(manifest, out, warm_start_config(resume=True))


def test_leaks_names_each_model_validated_on_what_it_or_its_start_trained_on(tmp_path):
    def rows(*patients):
        return pd.DataFrame({"image_path": [f"{p}.png" for p in patients],
                             "patient_id": list(patients)})

    write_split(tmp_path / "pooled", rows("a", "b"), rows("c"))
    write_split(tmp_path / "all-RCC", rows("b"), rows("c"), started_from="pooled")
    write_split(tmp_path / "roi_model", rows("a", "c"), rows("b"))
    assert leaks(tmp_path) == []
    write_split(tmp_path / "all-LCC", rows("c"), rows("a"), started_from="pooled")
    write_split(tmp_path / "all-RMLO", rows("d"), rows("d"))
    assert leaks(tmp_path) == [
        "all-LCC: 1 validation patient(s) trained on by pooled, which it started from (e.g. a)",
        "all-RMLO: 1 validation patient(s) trained on by itself (e.g. d)"]


def test_cross_validation_trains_the_served_recipe_in_each_fold(tmp_path):
    manifest = stripes_over_two_views(write_blobs(tmp_path / "blobs", 64, 8))
    out = tmp_path / "run"
    train_grid(manifest, out, warm_start_config(cv=2))
    cv = json.loads((out / runs.CV_FILE).read_text())
    assert "warm-start model (1 epochs)" in cv["recipe"]
    assert len(cv["baseline"]) == 2
    for k in (1, 2):
        fold = out / "cv" / f"fold-{k}"
        assert read_split(fold / "pooled")["train"]["images"]
        assert read_split(fold / "all-RCC")["started_from"] == "pooled"
        assert not list(fold.glob(f"*/{runs.WEIGHTS_FILE}"))  # fold weights are not kept
    assert leaks(out) == []  # the run's models and every fold's


# ------------------------------------------------------------------ the dataset hash

def test_dataset_hash_covers_roi_shapes_mask_bytes_and_labels(tmp_path):
    from core.datasets.fingerprint import dataset_hash

    mask = np.zeros((16, 16), np.uint8)
    mask[2:6, 2:6] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    df = pd.DataFrame({
        "image_path": [str(tmp_path / "a.png"), str(tmp_path / "b.png")],
        "patient_id": ["p1", "p2"], "study_id": ["s1", "s2"], "laterality": ["L", "R"],
        "view": ["CC", "CC"], "label": ["malignant", "benign"],
        "mask_path": [str(tmp_path / "m.png"), ""], "split": ["train", "train"],
        "roi_shapes": ["", '[{"shape": "box", "x": 1, "y": 1, "w": 4, "h": 4}]'],
        "roi": [True, True], "view_name": ["LCC", "RCC"]})
    before = dataset_hash(df, tmp_path)
    assert dataset_hash(df, tmp_path) == before  # a pure function of the files
    moved_box = df.assign(roi_shapes=["", '[{"shape": "box", "x": 9, "y": 1, "w": 4, "h": 4}]'])
    assert dataset_hash(moved_box, tmp_path) != before
    assert dataset_hash(df.assign(label=["benign", "benign"]), tmp_path) != before
    mask[10:14, 10:14] = 255  # the same file name, another ROI
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    assert dataset_hash(df, tmp_path) != before


# ------------------------------------------------------------------ calibration per grid

def _cell(folder, z_val, y_val):
    from core.evaluate.calibration import IDENTITY
    from core.runfolder.integrity import file_sha256
    from core.train.calibrate import calibration_data, own_calibration, serving_fields

    z_val, y_val = np.asarray(z_val, float), np.asarray(y_val, int)
    data = calibration_data(z_val, y_val, z_val, y_val, "val")
    own = own_calibration(np.asarray(data["val_logits"]), y_val)
    meta = {**serving_fields(own or IDENTITY, "cell" if own else "none", data),
            "calibration_data": data}
    folder.mkdir(parents=True)
    (folder / runs.META_FILE).write_text(json.dumps(meta))
    return CellResult(folder.name, "done", threshold=meta["threshold"],
                      temperature=meta["temperature"], logit_offset=meta["logit_offset"],
                      meta_sha256=file_sha256(folder / runs.META_FILE))


def test_small_cells_are_calibrated_on_their_grids_pooled_validation(tmp_path):
    from core.evaluate.calibration import Calibration, expected_calibration_error, fit_calibration
    from core.runfolder.integrity import file_sha256
    from core.train.calibrate import CELL_MIN_PER_CLASS, calibrate_grids
    from core.train.metrics import youden_threshold

    rng = np.random.default_rng(0)

    def balanced_model(n):  # true logit z; a class-balanced model reports 2 z + 1.7
        z = rng.normal(-1.7, 1.5, n)
        return 2 * z + 1.7, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)

    small = {name: balanced_model(25) for name in ("all-RCC", "all-LCC", "all-RMLO", "all-LMLO")}
    results = {name: _cell(tmp_path / name, *data) for name, data in small.items()}
    big_z, big_y = balanced_model(4000)
    assert min(np.bincount(big_y)) >= CELL_MIN_PER_CLASS
    results["roi-RCC"] = _cell(tmp_path / "roi-RCC", big_z, big_y)
    record = calibrate_grids(tmp_path, results)

    z = np.concatenate([d[0] for d in small.values()])
    y = np.concatenate([d[1] for d in small.values()])
    pooled = fit_calibration(np.round(z, 6), y)
    assert record["baseline"]["temperature"] == pytest.approx(pooled.temperature)
    assert record["baseline"]["own"] == [] and record["roi"]["own"] == ["roi-RCC"]
    for name, (_, y_cell) in small.items():
        meta = json.loads((tmp_path / name / runs.META_FILE).read_text())
        assert meta["calibration_scope"] == "grid"
        assert (meta["temperature"], meta["logit_offset"]) == (pooled.temperature, pooled.offset)
        assert results[name].meta_sha256 == file_sha256(tmp_path / name / runs.META_FILE)
        stored = np.asarray(meta["calibration_data"]["val_logits"])
        served = Calibration(meta["temperature"], meta["logit_offset"]).probability(stored)
        raw = 1 / (1 + np.exp(-stored))
        called = served >= meta["threshold"]
        assert pooled.temperature != 1.0 and not np.allclose(served, raw)
        assert np.array_equal(called, raw >= youden_threshold(y_cell, raw))  # the same cut
        assert meta["threshold_counts"]["tp"] == int((called & (y_cell == 1)).sum())
    big = json.loads((tmp_path / "roi-RCC" / runs.META_FILE).read_text())
    assert big["calibration_scope"] == "cell"
    assert big["logit_offset"] == pytest.approx(1.7, abs=0.2)
    # the pooled fit takes the balanced loss's shift back; no fit leaves it in place
    assert expected_calibration_error(pooled.probability(z), y) < 0.5 * expected_calibration_error(
        1 / (1 + np.exp(-z)), y)
    evidence = record["baseline"]["validation"]
    assert evidence["n"] == 100 and evidence["roc_auc"]["ci_low"] < evidence["roc_auc"]["value"]


# ------------------------------------------------------------------ the benchmark's figures

def test_demo_benchmark_reports_served_and_unscaled_calibration_per_grid():
    from benchmarks.demo_auc import describe, grid_figures

    result = {"dataset": {"n_images": 40},
              "baseline": {"roc_auc": {"value": 0.81234}},
              "calibration": {"baseline": {"ece": 0.0712, "brier": 0.1101,
                                           "uncalibrated": {"ece": 0.2288, "brier": 0.2012}}},
              "cam_pointing": {"baseline": {"hit_rate": 0.5, "chance": 0.1}}}
    row = {"difficulty": "moderate", "seconds": 1.0, **grid_figures(result, "baseline"),
           **grid_figures(result, "roi_aware")}
    assert row["baseline_roc_auc"] == 0.812 and row["baseline_ece"] == 0.071
    assert row["baseline_ece_unscaled"] == 0.229 and row["baseline_brier"] == 0.11
    assert row["baseline_brier_unscaled"] == 0.201 and row["roi_aware_ece"] is None
    line = describe(row)
    assert "ECE 0.071 (unscaled 0.229)" in line and "Brier 0.11 (unscaled 0.201)" in line
    assert "ROI-aware" not in line  # a grid the run did not train is not printed


def test_cv_says_whether_its_folds_trained_the_served_recipe(tmp_path):
    from core import evaluate as ev
    from core.evaluate.cv import UNRECORDED_RECIPE

    run = tmp_path / "run"
    run.mkdir()
    folds = [{"fold": 1, "n": 10, "roc_auc": 0.7}, {"fold": 2, "n": 10, "roc_auc": 0.9}]
    rows = [{"image_path": f"i{i}", "patient_id": f"p{i}", "study_id": f"s{i}", "view": "RCC",
             "roi": False, "label": i % 2, "mode": "baseline", "cell": "all-RCC",
             "fallback": False, "p_malignant": 0.2 + 0.6 * (i % 2), "threshold": 0.5}
            for i in range(8)]
    pd.DataFrame(rows).to_csv(run / runs.PREDICTIONS_FILE, index=False)
    (run / runs.RUN_FILE).write_text(json.dumps({"dataset": "x", "arch": "resnet10t"}))
    (run / runs.CV_FILE).write_text(json.dumps({"baseline": folds}))  # written before the recipe
    old = ev.evaluate_run(run, n_boot=0)
    assert old["cv_recipe"] == UNRECORDED_RECIPE and "do not describe" in old["cv_recipe"]
    assert old["cv"]["baseline"]["roc_auc"]["mean"] == pytest.approx(0.8)
    recipe = "Each fold trains the served recipe on its other folds: …"
    (run / runs.CV_FILE).write_text(json.dumps({"baseline": folds, "recipe": recipe}))
    new = ev.evaluate_run(run, n_boot=0)
    assert new["cv_recipe"] == recipe and set(new["cv"]) == {"baseline"}
    from core.evaluate.report import format_cv

    assert recipe in format_cv(new)
