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

from core.errors import CheckpointError
from core.grid import MODES, VIEWS, Cell, is_route_warning, plan, route_warning
from core.models import create_model, save_weights
from core.pixels.preprocess import PreprocessParams
from core.pixels.views import combine_view, contradictions, parse_view_name, view_evidence
from core.predict import PREDICTION_COLUMNS, Predictor, ViewInput, predict_manifest
from core.review.overlay import cam_overlay, draw_outline
from core.review.report import routing_sentence
from helpers import dicom_write, write_meta

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
ALL_CELLS = [c.name for c in plan("baseline") + plan("roi")]
BIAS = {name: -3.0 + 0.5 * i for i, name in enumerate(ALL_CELLS)}  # distinct P per cell


def _head(model):
    return model.backbone.get_classifier()


def make_run(root: Path, arch: str = "convnextv2_atto", modes=("baseline", "roi"),
             skipped: dict[str, str] | None = None, marked: bool = True,
             spec: PreprocessParams | None = None) -> Path:
    """A run folder like core.train writes: run.json (with its preprocessing spec: by
    default the whole frame at SIZE px), weights and meta per cell."""
    skipped = skipped or {}
    spec = spec or PreprocessParams(SIZE, crop=False)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_model(arch, spec.size)
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
            meta_sha = write_meta(root / name, {"threshold": 0.3 + 0.01 * len(cells)})
            cells[name] = {"status": "done", "sha256": sha, "meta_sha256": meta_sha}
    info = {"arch": arch, "img_size": spec.size, "modes": list(modes), "cells": cells,
            "preprocess": spec.to_json()}
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
    said = routing_sentence(lmlo)  # the stand-in is the other ROI cell, not a baseline model
    assert said.endswith("the model for LMLO views without a finding read it instead.")
    assert "roi-LMLO" not in said and "skipped in training (too few)" in said
    assert "trained on all" not in said
    assert "skipped in training (too few) and no stand-in for RCC" in routing_sentence(rcc)
    assert [w for w in lmlo.warnings if is_route_warning(w)] == [
        route_warning("roi", lmlo.fallback_reason)]


def test_routing_sentence_names_a_failed_cell_and_its_stand_in(work, study):
    run = make_run(work / "failed_cell")
    info = json.loads((run / "run.json").read_text())
    info["cells"]["roi-LCC"] = {"status": "failed", "reason": "CUDA out of memory"}
    (run / "run.json").write_text(json.dumps(info))
    (lcc,) = Predictor(run).predict_study(
        [ViewInput(path=study["LCC"], mask_path=write_mask(work / "mask3.png"))])
    assert lcc.fallback and lcc.cell_roi_aware == "all-LCC"
    said = routing_sentence(lcc, "mask")
    assert "the model for LCC views with a finding failed in training (CUDA out of memory)" in said
    assert "the LCC model trained on all LCC images read it instead" in said
    assert "too few" not in said


def test_route_warnings_carry_one_prefix_per_grid():
    made = {mode: route_warning(mode, "roi-RCC has no model") for mode in MODES}
    assert len(set(made.values())) == len(MODES)
    assert all(is_route_warning(w) and w.endswith("roi-RCC has no model") for w in made.values())
    assert not is_route_warning("View set to RCC although the DICOM tags give laterality L")
    assert not is_route_warning("")
    with pytest.raises(KeyError):
        route_warning("all", "x")


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
    overlay = draw_outline(cam_overlay(results[0].preprocessed, results[0].cam_baseline, 0.5),
                           np.pad(np.ones((8, 8), np.uint8), 20))
    assert overlay.shape == (SIZE, SIZE, 3) and overlay.dtype == np.uint8


def test_a_new_cam_recipe_replaces_the_maps_of_the_old_one(work, study):
    from core.models import CamRecipe

    run = make_run(work / "cam_recipe", arch="convnextv2_atto", modes=("baseline",), marked=False)
    inputs = [ViewInput(path=study["RCC"])]
    switched = Predictor(run)
    switched.predict_study(inputs, cam=True)  # CAM objects made under the family's recipe
    recipe = CamRecipe("layercam", (-2,))
    switched.cam_recipe = recipe
    fresh = Predictor(run)
    fresh.cam_recipe = recipe
    got = switched.predict_study(inputs, cam=True)[0].cam_baseline
    want = fresh.predict_study(inputs, cam=True)[0].cam_baseline
    default = Predictor(run).predict_study(inputs, cam=True)[0].cam_baseline
    assert not np.allclose(want, default, atol=1e-3)  # the two recipes draw different maps
    np.testing.assert_allclose(got, want, atol=1e-5)


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


def test_training_review_and_command_line_give_the_model_the_same_pixels_at_1024(work):
    """At 1024 px the rendering is made at a 1024-px source side, not the default 768:
    the training images, a file given to the predictor, the app's upload and
    ``preprocess --run`` must all reach the model as the same pixels (no train/serve
    skew), all built from the spec stored in run.json."""
    from core.__main__ import main
    from core.pixels.preprocess import prepare_input
    from core.pixels.read import render_uint8
    from core.pixels.spec import SOURCE_SIDE
    from core.review.case import read_upload
    from core.review.study import to_inputs
    from core.train.config import TrainConfig
    from core.train.data import ImageBank

    spec = TrainConfig(img_size=1024).preprocess_params()  # what training stores in run.json
    lone = {c.name: "not in this test" for c in plan("baseline") if c.name != "all-LCC"}
    run = make_run(work / "run1024", modes=("baseline",), skipped=lone, spec=spec)
    predictor = Predictor(run)
    assert predictor.params == spec and spec.source_side == 1024
    path = write_dicom(work / "big.dcm", "L", "CC", shape=(2048, 1600))
    trained = ImageBank([str(path)], spec).images[0, 0].numpy()
    upload = read_upload(path.name, path.read_bytes(), predictor.params)
    assert upload.shape == (2048, 1600) and upload.pixels.shape == (2048, 1600)  # 800 < 1024
    from_path, from_app = (predictor.predict_study(inputs)[0]
                           for inputs in ([ViewInput(path=path)], to_inputs([upload])))
    out = work / "big-1024.png"
    assert main(["preprocess", str(path), "--run", str(run), "--out", str(out)]) == 0
    for got in (from_path.preprocessed, from_app.preprocessed,
                cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)):
        np.testing.assert_array_equal(got, trained)
    assert from_app.error is None and from_app.view == "LCC"
    assert from_app.p_malignant_baseline == from_path.p_malignant_baseline
    # the check can fail: the default 768-px rendering (halved here) gives other pixels
    halved = prepare_input(render_uint8(path, SOURCE_SIDE).pixels, spec)[0]
    assert halved.shape == trained.shape and not np.array_equal(halved, trained)
    # a view decoded for another run's spec is refused, not served other pixels
    other = read_upload(path.name, path.read_bytes(), PreprocessParams(SIZE))
    refused = predictor.predict_study(to_inputs([other]))[0]
    assert refused.p_malignant_baseline is None
    assert "rendered at a 768-px source side, but this run's spec needs 1024" in refused.error


def test_preprocess_command_takes_a_spec_from_the_run_or_the_options(run_dir, predictor, study,
                                                                     capsys):
    """``preprocess --run`` is the run's stored spec alone: an option beside it would
    describe other pixels, so it is refused, and so is giving neither."""
    from core.__main__ import main

    out = run_dir.parent / "from-run.png"
    assert main(["preprocess", str(study["RCC"]), "--run", str(run_dir), "--size", "32",
                 "--no-crop", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("error: --run uses the run's stored spec; leave out "
                                       "--size, --no-crop\n")
    assert main(["preprocess", str(study["RCC"]), "--out", str(out)]) == 2
    assert "give --size, or --run RUN" in capsys.readouterr().err and not out.exists()
    assert main(["preprocess", str(study["RCC"]), "--run", str(run_dir), "--out", str(out)]) == 0
    served = predictor.predict_study([ViewInput(path=study["RCC"])])[0].preprocessed
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_GRAYSCALE), served)


@pytest.mark.parametrize("block, said", [
    (None, "this run records no preprocessing spec (MammoRoute 0.1.0, commit 931fc8e): it "
           "predates preprocessing version"),
    ({"clahe_clip": 2.0, "clahe_tiles": 8, "crop": True, "fit": "stretch", "version": 3},
     "this run was made under preprocessing version 3 (MammoRoute 0.1.0, commit 931fc8e); "
     "this MammoRoute renders version"),
])
def test_run_without_this_preprocessing_version_is_refused(work, study, capsys, block, said):
    """A run whose spec this code does not render is refused by the predictor and the
    command line, with what to do; never served pixels its models did not see."""
    from core.__main__ import main

    run = work / "old-run"
    if not run.exists():
        make_run(run, modes=("baseline",))
    info = json.loads((run / "run.json").read_text())
    info.update(preprocess=block, code_version="0.1.0", git_commit="931fc8e" + "0" * 33)
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError) as err:
        Predictor(run)
    assert str(err.value).startswith(f"{run / 'run.json'}: {said}")
    assert str(err.value).endswith("retrain it with this MammoRoute (Train page or `python -m "
                                   "core train`), or open it with the MammoRoute that made it")
    assert main(["predict", str(run), str(study["LCC"])]) == 2
    assert capsys.readouterr().err == f"error: {err.value}\n"


def test_manifest_with_an_all_zero_mask_file_routes_and_scores_as_no_roi(predictor, work,
                                                                         monkeypatch):
    from core.datasets.manifest import read_manifest_csv
    from core.evaluate import evaluate_predictions

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


def test_grad_cam_is_scaled_within_the_breast_not_the_air_beside_it():
    from core.pixels.crop import tissue_mask
    from core.predict.cam import unit_maps

    image = np.zeros((64, 64), np.uint8)
    image[4:60, :36] = 150  # the breast on the left, air on the right
    yy, xx = np.mgrid[:64, :64]
    heat = (np.exp(-((yy - 32) ** 2 + (xx - 58) ** 2) / 20.0)  # the peak, in the air
            + 0.4 * np.exp(-((yy - 30) ** 2 + (xx - 12) ** 2) / 20.0)).astype(np.float32)
    whole = unit_maps(heat[None], (64, 64))[0]
    assert whole[32, 58] == whole.max()  # unrestricted, the hottest colour sits in the air
    inside = unit_maps(heat[None], (64, 64), image[None])[0]
    breast = tissue_mask(image)
    assert not breast[32, 58] and inside[32, 58] == 0.0 and inside[~breast].max() == 0.0
    peak = np.unravel_index(np.argmax(inside), inside.shape)
    assert breast[peak] and inside[peak] == 1.0 and abs(peak[1] - 12) <= 2
    blank = unit_maps(heat[None], (64, 64), np.zeros((1, 64, 64), np.uint8))[0]
    assert np.allclose(blank, whole)  # no breast found: the whole map, as before
