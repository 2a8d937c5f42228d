"""Routed prediction: routing table, fallbacks, views, masks, Grad-CAM, manifests, CLI.

The run folders are built here from random models whose head is zeroed and
given a distinct bias per cell, so P(malignant) names the model that served
an image — routing is checked by value, without any training.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import dicom_write
from core.errors import CheckpointError
from core.grid import VIEWS, Cell, plan
from core.models import create_model, save_weights
from core.predict import PREDICTION_COLUMNS, Predictor, ViewInput, cam_overlay, predict_manifest
from core.views import combine_view, contradictions, parse_view_name, view_evidence

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
ALL_CELLS = [c.name for c in plan("baseline") + plan("roi")]
BIAS = {name: -3.0 + 0.5 * i for i, name in enumerate(ALL_CELLS)}  # distinct P per cell


def _head(model):
    return model.backbone.get_classifier()


def make_run(root: Path, arch: str = "convnextv2_atto", modes=("baseline", "roi"),
             skipped: dict[str, str] | None = None, marked: bool = True) -> Path:
    """A run folder like core.train writes: run.json, weights and meta per cell."""
    skipped = skipped or {}
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_model(arch, SIZE)
    cells = {}
    for mode in modes:
        for cell in plan(mode):
            name = cell.name
            if name in skipped:
                cells[name] = {"status": "skipped", "reason": skipped[name]}
                continue
            if marked:
                with torch.no_grad():
                    _head(model).weight.zero_()
                    _head(model).bias.fill_(BIAS[name])
            sha = save_weights(model, root / name / "weights.safetensors")
            (root / name / "meta.json").write_text(json.dumps({"threshold": 0.3 + 0.01 * len(cells)}))
            cells[name] = {"status": "done", "sha256": sha}
    info = {"arch": arch, "img_size": SIZE, "modes": list(modes), "cells": cells}
    (root / "run.json").write_text(json.dumps(info))
    return root


def served_by(p: float) -> str:
    """The cell whose bias gives probability ``p``."""
    return min(BIAS, key=lambda n: abs(1 / (1 + math.exp(-BIAS[n])) - p))


def write_png(path: Path, shape=(96, 80), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * 200 + 20).astype(np.uint8)
    cv2.imwrite(str(path), img)
    return path


def write_mask(path: Path, shape=(96, 80), empty: bool = False) -> Path:
    mask = np.zeros(shape, np.uint8)
    if not empty:
        mask[30:50, 20:40] = 255
    cv2.imwrite(str(path), mask)
    return path


def write_dicom(path: Path, laterality: str, position: str, shape=(96, 80)) -> Path:
    """A small 12-bit MONOCHROME2 mammogram DICOM with ImageLaterality / ViewPosition."""
    arr = (np.random.default_rng(1).random(shape) * 4000).astype(np.uint16)
    return dicom_write(path, arr, ImageLaterality=laterality, ViewPosition=position,
                       BitsStored=12, HighBit=11)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def run_dir(work) -> Path:
    return make_run(work / "run", skipped={"roi-LMLO": "no ROI images of this view"})


@pytest.fixture(scope="module")
def predictor(run_dir) -> Predictor:
    return Predictor(run_dir)


@pytest.fixture(scope="module")
def study(work) -> dict[str, Path]:
    """Four views named in four different file-name styles."""
    names = {"RCC": "RCC.png", "LCC": "P2_L_DM_CC.png", "RMLO": "right_mlo.png", "LMLO": "x_L_MLO.png"}
    return {v: write_png(work / n, seed=i) for i, (v, n) in enumerate(names.items())}


# --------------------------------------------------------------------------- routing

@pytest.mark.parametrize("roi", [False, True])
def test_every_image_goes_to_its_cell(predictor, study, work, roi):
    mask = write_mask(work / "mask.png") if roi else None
    inputs = [ViewInput(path=p, mask_path=mask) for p in study.values()]
    results = predictor.predict_study(inputs)
    for view, r in zip(study, results):
        assert r.error is None and r.view == view and r.roi is roi
        assert r.cell_baseline == f"all-{view}" == served_by(r.p_malignant_baseline)
        if roi and view == "LMLO":  # skipped cell → baseline stands in
            assert r.fallback and r.cell_roi_aware == "all-LMLO"
            assert "roi-LMLO" in r.fallback_reason and "no ROI images" in r.fallback_reason
        else:
            expected = Cell(roi, view).name
            assert not r.fallback and r.fallback_reason is None
            assert r.cell_roi_aware == expected == served_by(r.p_malignant_roi_aware)
        assert r.threshold_roi_aware == predictor.thresholds[r.cell_roi_aware]
        assert r.preprocessed.shape == (SIZE, SIZE) and r.preprocessed.dtype == np.uint8


def test_fallback_to_other_roi_cell_then_none(work, study):
    run = make_run(work / "roi_only", modes=("roi",),
                   skipped={"roi-LMLO": "too few", "noroi-RCC": "too few", "roi-RCC": "too few"})
    pred = Predictor(run)
    mask = write_mask(work / "mask2.png")
    lmlo, rcc = pred.predict_study([ViewInput(path=study["LMLO"], mask_path=mask),
                                    ViewInput(path=study["RCC"], mask_path=mask)])
    assert lmlo.fallback and lmlo.cell_roi_aware == "noroi-LMLO"
    assert served_by(lmlo.p_malignant_roi_aware) == "noroi-LMLO"
    assert lmlo.p_malignant_baseline is None and lmlo.error is None
    assert rcc.p_malignant_roi_aware is None and rcc.cell_roi_aware is None
    assert "roi-RCC" in rcc.error and "no stand-in" in rcc.error


def test_tampered_weights_refused(work):
    run = make_run(work / "tampered", modes=("baseline",))
    weights = run / "all-RCC" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        Predictor(run)


# --------------------------------------------------------------------------- views

@pytest.mark.parametrize("name, view", [
    ("RCC.png", "RCC"), ("L_CC.dcm", "LCC"), ("P2_L_DM_MLO.jpg", "LMLO"),
    ("left_mlo.png", "LMLO"), ("case_R_CC.png", "RCC"), ("RMLO", "RMLO"), ("rightCC.png", "RCC"),
    ("lmlo_2.PNG", "LMLO"), ("image.png", None), ("accession_mlo.png", None),
    ("d8125545210c08e1b17cc3a5af6458ee.dicom", None), ("L_CC_R.png", None),
])
def test_view_from_file_name(name, view):
    lat, pos = parse_view_name(name)
    assert (lat + pos if lat and pos else None) == view


def test_view_from_tags_name_and_contradiction():
    assert combine_view("R", "MLO", "P1_R_MLO.dcm") == ("RMLO", "dicom")
    warnings: list[str] = []
    assert combine_view("R", "MLO", "P1_L_CC.dcm", warnings=warnings) == ("RMLO", "dicom")
    assert any("laterality R" in w and "file name says L" in w for w in warnings)
    assert combine_view(None, None, "upload_LCC.png") == ("LCC", "filename")
    assert combine_view(None, None, "b.png", given="lmlo") == ("LMLO", "manifest")
    assert combine_view(None, None, "b.png") == (None, None)


def test_laterality_tag_alone_and_a_view_set_against_it():
    evidence = view_evidence("L", None, "1591370361.dcm")
    assert (evidence.laterality, evidence.laterality_source) == ("L", "dicom")
    assert evidence.view is None and evidence.position is None
    assert contradictions("LMLO", evidence) == []
    (said,) = contradictions("RCC", evidence)
    assert "RCC" in said and "DICOM tags give laterality L" in said
    by_name = view_evidence(None, None, "case_L_CC.png")
    assert len(contradictions("RMLO", by_name)) == 2


def test_dicom_study_view_from_tags_with_warning(predictor, work):
    dcm = write_dicom(work / "scan_L_CC.dcm", "R", "CC")
    (r,) = predictor.predict_study([ViewInput(path=dcm)])
    assert r.error is None and r.view == "RCC" and r.view_source == "dicom"
    assert any("file name says L" in w for w in r.warnings)


def test_unknown_view_is_a_per_image_error(predictor, work, study):
    unknown = write_png(work / "scan.png")
    results = predictor.predict_study([ViewInput(path=unknown), ViewInput(path=study["RCC"])])
    assert "cannot tell the view" in results[0].error and results[1].error is None
    (forced,) = predictor.predict_study([ViewInput(path=unknown, view="lmlo")])
    assert forced.view == "LMLO" and forced.view_source == "user"


# --------------------------------------------------------------------------- masks

def test_empty_mask_means_no_roi(predictor, work, study):
    empty = write_mask(work / "empty.png", empty=True)
    (r,) = predictor.predict_study([ViewInput(path=study["RCC"], mask_path=empty)])
    assert r.roi is False and r.cell_roi_aware == "noroi-RCC" and r.mask is None
    assert any("empty" in w for w in r.warnings)


def test_wrong_size_mask_fails_that_view_only(predictor, work, study):
    bad = write_mask(work / "small_mask.png", shape=(50, 50))
    inputs = [ViewInput(path=study["RCC"], mask_path=bad),
              ViewInput(path=study["LCC"], mask=np.ones((40, 40), np.uint8)),
              ViewInput(path=study["RMLO"]), ViewInput(path=work / "missing.png", view="LMLO")]
    r = predictor.predict_study(inputs)
    assert "differs from its mammogram" in r[0].error and r[0].p_malignant_roi_aware is None
    assert "differs from its mammogram" in r[1].error
    assert "file not found" in r[3].error
    assert r[2].error is None and r[2].p_malignant_roi_aware is not None


def test_mask_array_routes_and_is_shrunk(predictor, study):
    mask = np.zeros((96, 80), np.uint8)
    mask[10, 10] = 1  # a single pixel still counts and survives the shrink
    (r,) = predictor.predict_study([ViewInput(path=study["RMLO"], mask=mask)])
    assert r.roi and r.cell_roi_aware == "roi-RMLO" and r.mask.shape == (SIZE, SIZE)
    assert r.mask.any()


def test_same_input_twice_identical(predictor, study):
    inputs = [ViewInput(path=p) for p in study.values()]
    a = predictor.predict_study(inputs)
    b = predictor.predict_study(inputs)
    assert [x.p_malignant_roi_aware for x in a] == [x.p_malignant_roi_aware for x in b]
    assert [x.p_malignant_baseline for x in a] == [x.p_malignant_baseline for x in b]


def test_pixels_input(predictor, study):
    pixels = cv2.imread(str(study["LCC"]), cv2.IMREAD_GRAYSCALE)
    (a,) = predictor.predict_study([ViewInput(name="upload_LCC.png", pixels=pixels)])
    (b,) = predictor.predict_study([ViewInput(path=study["LCC"])])
    assert a.view == "LCC" and a.p_malignant_baseline == pytest.approx(b.p_malignant_baseline)


# --------------------------------------------------------------------------- Grad-CAM

@pytest.mark.parametrize("arch", ["convnextv2_atto", "swin_micro"])
def test_cam_shape_and_range(work, study, arch):
    run = make_run(work / f"cam_{arch}", arch=arch, modes=("baseline",), marked=False)
    pred = Predictor(run)
    inputs = [ViewInput(path=study["RCC"]), ViewInput(path=study["LMLO"])]
    plain = pred.predict_study(inputs)
    for _ in range(2):  # the CAM object is reused; hooks do not pile up
        results = pred.predict_study(inputs, cam=True)
    for r, p in zip(results, plain):
        cam = r.cam_baseline
        assert cam.shape == (SIZE, SIZE) and cam.dtype == np.float32
        assert 0.0 <= cam.min() and cam.max() <= 1.0 and cam.max() > 0
        assert r.p_malignant_baseline == pytest.approx(p.p_malignant_baseline, abs=1e-5)
        assert r.cam_roi_aware is None
    model = pred.models["all-RCC"]
    assert all(not m._forward_hooks for m in model.modules())
    overlay = cam_overlay(results[0].preprocessed, results[0].cam_baseline,
                          np.pad(np.ones((8, 8), np.uint8), 20))
    assert overlay.shape == (SIZE, SIZE, 3) and overlay.dtype == np.uint8


# --------------------------------------------------------------------------- manifests

def test_predict_manifest_long_table(predictor, work, monkeypatch):
    monkeypatch.setenv("MAMMOROUTE_CACHE", str(work / "cache"))
    rows = []
    for i in range(10):
        view = VIEWS[i % 4]
        rows.append({"image_path": str(write_png(work / f"m{i}.png", seed=i)),
                     "patient_id": f"p{i // 4}", "study_id": f"s{i // 4}",
                     "laterality": view[0], "view": view[1:], "view_name": view,
                     "label": "malignant" if i % 3 == 0 else "benign",
                     "mask_path": "", "split": "test", "roi": (i // 4) % 2 == 0})
    df = pd.DataFrame(rows)
    out = predict_manifest(predictor, df)
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert len(out) == 2 * len(df) and out.attrs["unpredicted"] == 0
    assert list(out["image_path"]) == [p for p in df["image_path"] for _ in range(2)]
    assert set(out["mode"]) == {"baseline", "roi"} and set(out["label"]) == {0, 1}
    for _, r in out.iterrows():
        assert served_by(r.p_malignant) == r.cell
    lmlo_roi = out[(out["view"] == "LMLO") & out["roi"] & (out["mode"] == "roi")]
    assert len(lmlo_roi) and lmlo_roi["fallback"].all() and (lmlo_roi["cell"] == "all-LMLO").all()
    assert out["fallback"].sum() == len(lmlo_roi)


# --------------------------------------------------------------------------- CLI

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "core", "predict", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_json_cam_and_bad_file(study, work):
    trained = {"all-RCC", "all-RMLO", "noroi-RCC", "roi-RMLO"}  # few models: fast subprocesses
    run_dir = make_run(work / "cli_run", skipped={c: "not in this test" for c in ALL_CELLS
                                                  if c not in trained})
    bad = work / "broken_RCC.png"
    bad.write_bytes(b"not an image at all")
    outdir = work / "cams"
    proc = _cli(str(run_dir), str(study["RCC"]), str(study["RMLO"]), str(study["LCC"]), str(bad),
                "--json", "--cam", str(outdir), "--device", "cpu",
                "--mask", f"{study['RMLO']}={write_mask(work / 'm3.png')}")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["view"] for r in rows] == ["RCC", "RMLO", "LCC", None]
    assert rows[0]["cell"] == "noroi-RCC" and rows[0]["error"] is None
    assert rows[1]["roi"] is True and rows[1]["cell"] == "roi-RMLO"
    assert "all-LCC" in rows[2]["error"] and "not an image" in rows[3]["error"]
    assert {"image", "view", "roi", "cell", "fallback", "p_malignant_roi_aware",
            "p_malignant_baseline", "threshold_roi_aware", "error"} <= set(rows[0])
    assert len(list(outdir.glob("*.png"))) == 4 and "Traceback" not in proc.stderr


def test_cli_table_and_usage_errors(study, work, capsys):
    from core.__main__ import main

    run_dir = work / "cli_run"  # made by the test above
    assert main(["predict", str(run_dir), str(study["RCC"]), str(work / "broken_RCC.png"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "noroi-RCC" in out and "broken_RCC.png: error:" in out
    assert main(["predict", str(run_dir), str(work / "broken_RCC.png")]) == 2  # nothing predicted
    err = capsys.readouterr().err
    assert err.startswith("error: nothing could be predicted") and "broken_RCC.png" in err
    assert err.count("\n") == 1
    assert main(["predict", str(work / "nope"), str(study["RCC"])]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert main(["predict", str(run_dir), str(study["RCC"]), "--view", "other.png=RCC"]) == 2
    assert "names no" in capsys.readouterr().err
    assert main(["predict", str(run_dir), str(study["RCC"]), "--view", f"{study['RCC']}=XYZ"]) == 2
    assert "unknown view" in capsys.readouterr().err


def test_review_and_training_give_the_model_the_same_input(predictor, work):
    """A file reviewed in the app, predicted from the command line and read for
    training must reach the model as the same pixels (no train/serve skew),
    also when the file is large enough to be rendered reduced."""
    from core.preprocess import SOURCE_SIDE, load_preprocessed
    from ui.case import read_upload, to_inputs

    big = (SOURCE_SIDE * 2 + 37, SOURCE_SIDE * 2 + 5)  # halved once, odd rows dropped
    path = write_dicom(work / "big.dcm", "L", "CC", shape=big)
    trained = load_preprocessed(path, predictor.params, cache=None)
    from_path = predictor.predict_study([ViewInput(path=path)])[0]
    upload = read_upload(path.name, path.read_bytes())
    assert upload.shape == big and min(upload.pixels.shape) < min(big)  # reduced, masks at full size
    from_app = predictor.predict_study(to_inputs([upload]))[0]
    for result in (from_path, from_app):
        assert result.error is None and result.view == "LCC"
        np.testing.assert_array_equal(result.preprocessed, trained)
    assert from_app.p_malignant_roi_aware == from_path.p_malignant_roi_aware


def test_manifest_with_an_all_zero_mask_file_routes_and_scores_as_no_roi(predictor, work,
                                                                         monkeypatch):
    from core.evaluate import evaluate_predictions
    from core.manifest import read_manifest_csv

    monkeypatch.setenv("MAMMOROUTE_CACHE", str(work / "cache"))
    rows = []
    for i, (label, mask) in enumerate([("malignant", "zero"), ("malignant", "full"),
                                       ("benign", "")]):
        image = write_png(work / f"zero_case{i}.png", seed=20 + i)
        if mask:
            write_mask(work / f"zero_case{i}_mask.png", empty=mask == "zero")
        rows.append({"image_path": image.name, "patient_id": f"z{i}", "study_id": f"z{i}",
                     "laterality": "R", "view": "CC", "label": label,
                     "mask_path": f"zero_case{i}_mask.png" if mask else "", "split": "test"})
    csv = work / "zero_mask_manifest.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    raw = pd.DataFrame(rows)  # a table never finalized: the same rule reads its mask files
    raw["image_path"] = raw["image_path"].map(lambda p: str(work / p))
    raw["mask_path"] = raw["mask_path"].map(lambda p: str(work / p) if p else "")
    for table in (read_manifest_csv(csv), raw):
        out = predict_manifest(predictor, table)
        routed = out[out["mode"] == "roi"]
        assert routed["cell"].tolist() == ["noroi-RCC", "roi-RCC", "noroi-RCC"]
        assert routed["roi"].tolist() == [False, True, False]
        reference = evaluate_predictions(out, n_boot=20)["roi_presence_only"]
        assert reference["sensitivity"]["value"] == 0.5  # the empty-mask cancer reads "no ROI"
    (r,) = predictor.predict_study([ViewInput(path=work / "zero_case0.png", view="RCC",
                                              mask_path=work / "zero_case0_mask.png")])
    assert r.roi is False and r.cell_roi_aware == "noroi-RCC"
