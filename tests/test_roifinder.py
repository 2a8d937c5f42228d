"""The ROI finder: it learns (and not from shuffled masks), its boxes land on lesions,
the three ``roi_source`` routes, a user's mask over a proposal, tamper refusal, and the
evaluation rows on fixed tables."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from test_predict import make_run, served_by, write_png

from core.errors import CheckpointError
from core.evaluate import evaluate_predictions
from core.evaluate.roifinder import box_iou, clean_proposals, froc, roi_model_metrics
from core.pixels.crop import CropBox
from core.pixels.spec import PreprocessParams
from core.roifinder.geometry import component_boxes, input_to_full, iou
from core.roifinder.infer import RoiFinder, map_boxes
from core.roifinder.model import create_finder
from core.roifinder.store import ROI_DIR, save_finder
from core.roifinder.train import FinderConfig, train_finder
from core.train.metrics import auc_or_none
from helpers import record_figures

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 96, 80


# --------------------------------------------------------------------------- hand-made data

def _blob_study(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """``n`` grey "breasts" on black; every other one carries a bright disc, its mask the disc."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:H, :W]
    rows = []
    for i in range(n):
        breast = ((xx / (0.9 * W)) ** 2 + ((yy - H / 2) / (0.48 * H)) ** 2) < 1
        texture = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 3)
        img = np.where(breast, 70 + 400 * (texture - texture.mean()), 0)
        has = i % 2 == 0
        mask = np.zeros((H, W), np.uint8)
        if has:
            cy, cx, r = rng.integers(25, 70), rng.integers(12, 45), int(rng.integers(5, 9))
            cv2.circle(mask, (int(cx), int(cy)), r, 255, -1)
            img = np.where(mask > 0, img + 110, img)
        cv2.imwrite(str(folder / f"p{i}_L_CC.png"), np.clip(img, 0, 255).astype(np.uint8))
        if has:
            cv2.imwrite(str(folder / f"p{i}_mask.png"), mask)
        rows.append({"image_path": str(folder / f"p{i}_L_CC.png"), "patient_id": f"{seed}-{i}",
                     "study_id": f"{seed}-{i}", "laterality": "L", "view": "CC",
                     "label": "malignant" if has else "benign",
                     "mask_path": str(folder / f"p{i}_mask.png") if has else "", "split": "train",
                     "roi_shapes": "", "roi": has, "view_name": "LCC"})
    return pd.DataFrame(rows)


def _test_auc(run: Path, test: pd.DataFrame) -> float:
    info = json.loads((run / "run.json").read_text())
    finder = RoiFinder.from_run(run, info)
    from core.pixels.cache import load_preprocessed_with_box

    loaded = [load_preprocessed_with_box(p, finder.params) for p in test["image_path"]]
    props = finder.propose_inputs(np.stack([i for i, _ in loaded]), [b for _, b in loaded],
                                  [(H, W)] * len(test))
    return auc_or_none(test["roi"].to_numpy().astype(int), np.array([p.probability for p in props]))


def _train(run: Path, train: pd.DataFrame) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    entry = train_finder(train, run, FinderConfig(size=48, epochs=10, batch_size=8, lr=3e-3))
    (run / "run.json").write_text(json.dumps({"roi_model": entry}))
    return entry


def test_finder_learns_blobs_and_not_shuffled_masks(tmp_path):
    train = _blob_study(tmp_path / "train", 48, seed=1)
    test = _blob_study(tmp_path / "test", 40, seed=2)
    entry = _train(tmp_path / "real", train)
    assert entry["status"] == "done" and len(entry["sha256"]) == 64
    meta = json.loads((tmp_path / "real" / ROI_DIR / "meta.json").read_text())
    assert meta["threshold_source"] == "val" and 0.0 <= meta["threshold"] <= 1.0
    by_source = meta["presence_auc_val_by_source"]
    assert meta["n_val"] > 0 and set(by_source) == {"head", "map"}
    assert by_source[meta["presence_source"]] == max(by_source.values())
    assert meta["presence_auc_val"] == by_source[meta["presence_source"]] is not None
    # the served score is calibrated, and its threshold a readable number, not 99.999 %
    calibration = meta["presence_calibration"]
    assert calibration["fitted_on"] == "val" and calibration["temperature"] > 0
    assert 0.05 < meta["threshold"] < 0.95, meta["threshold"]
    real = _test_auc(tmp_path / "real", test)

    shuffled = train.copy()
    order = np.random.default_rng(0).permutation(len(train))
    for col in ("mask_path", "roi"):
        shuffled[col] = train[col].to_numpy()[order]
    _train(tmp_path / "shuffled", shuffled)
    noise = _test_auc(tmp_path / "shuffled", test)
    record_figures("roifinder.json", "learns", {"presence_auc_real": real,
                                                 "presence_auc_shuffled": noise})
    assert real >= 0.9, real
    assert noise <= 0.75, noise


# --------------------------------------------------------------------------- boxes

def test_boxes_land_on_hand_drawn_lesions():
    prob = np.zeros((48, 48), np.float32)
    prob[10:16, 30:38] = 0.9  # lesion A (6 x 8)
    prob[30:34, 5:9] = 0.7  # lesion B (4 x 4)
    prob[40, 40] = 0.95  # one-pixel speckle: dropped
    boxes, scores = component_boxes(prob, 0.5)
    assert boxes == [[30.0, 10.0, 38.0, 16.0], [5.0, 30.0, 9.0, 34.0]]
    assert scores == pytest.approx([0.9, 0.7])
    # into a 400 x 300 image through a crop box covering its right half, bottom 80 %
    full = input_to_full(boxes, CropBox(0.5, 0.2, 1.0, 1.0), 48, (400, 300))
    assert full[0] == pytest.approx([300 * (0.5 + 30 / 48 * 0.5), 400 * (0.2 + 10 / 48 * 0.8),
                                     300 * (0.5 + 38 / 48 * 0.5), 400 * (0.2 + 16 / 48 * 0.8)],
                                    abs=0.06)
    assert iou(full[0], full[0]) == 1.0 and iou(full[0], full[1]) == 0.0


def test_a_faint_map_still_gives_its_peak_box_scored_low():
    prob = np.full((16, 16), 0.05, np.float32)
    prob[4:7, 9:12] = 0.3
    boxes, scores = map_boxes(prob)
    assert boxes == [[9.0, 4.0, 12.0, 7.0]] and scores == pytest.approx([0.3])
    assert map_boxes(np.zeros((16, 16), np.float32)) == ([], [])


def test_truth_boxes_keep_every_annotated_component(tmp_path):
    """A mask's ROIs are all its components, however many and however small: the same
    truth for validation, the test table and the FROC."""
    from core.roifinder.geometry import truth_boxes

    mask = np.zeros((60, 50), np.uint8)
    mask[5:15, 5:15] = 255
    mask[20:24, 30:40] = 255
    mask[40:45, 2:6] = 255
    mask[50:52, 40:48] = 255
    mask[33, 25] = 255  # a one-pixel finding is still a finding
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    boxes = truth_boxes({"mask_path": str(tmp_path / "mask.png"), "roi_shapes": ""})
    assert sorted(boxes) == sorted([[5.0, 5.0, 15.0, 15.0], [30.0, 20.0, 40.0, 24.0],
                                    [2.0, 40.0, 6.0, 45.0], [40.0, 50.0, 48.0, 52.0],
                                    [25.0, 33.0, 26.0, 34.0]])


# --------------------------------------------------------------------------- chosen on validation

@pytest.fixture(scope="module")
def finder_with_a_perfect_head(tmp_path_factory):
    """A finder trained on blobs whose presence head is replaced, at the final choice, by
    the validation carve's own labels: validation then prefers the head, whatever the map."""
    import core.roifinder.train as finder_train
    from core.roifinder.data import carve

    root = tmp_path_factory.mktemp("valchoice")
    train = _blob_study(root / "train", 32, seed=5)
    config = FinderConfig(size=32, epochs=4, batch_size=8, lr=3e-3, val_fraction=0.25)
    val = carve(train, config.val_fraction, config.seed)[1]
    labels = val["roi"].to_numpy().astype(float)
    real = finder_train.predict_maps
    calls = []

    def head_knows(model, images, device):
        heads, maps = real(model, images, device)
        calls.append(len(images))
        return labels.copy(), maps

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finder_train, "predict_maps", head_knows)
        entry = train_finder(train, root / "run", config)
    (root / "run" / "run.json").write_text(json.dumps({"roi_model": entry}))
    meta = json.loads((root / "run" / ROI_DIR / "meta.json").read_text())
    return root / "run", val, meta, calls


def test_presence_source_and_threshold_are_chosen_on_validation(finder_with_a_perfect_head):
    from core.evaluate.calibration import fit_platt
    from core.roifinder.train import gap_threshold

    run, val, meta, calls = finder_with_a_perfect_head
    assert calls == [len(val)]  # the final choice looked at the validation carve only
    by_source = meta["presence_auc_val_by_source"]
    assert by_source["head"] == 1.0 and by_source["map"] is not None
    assert meta["presence_source"] == "head" and meta["presence_auc_val"] == 1.0
    assert meta["presence_source_rule"].startswith("higher validation ROC AUC")
    labels = val["roi"].to_numpy().astype(int)
    assert meta["threshold_source"] == "val"
    # Platt on the head's logits (0 / 1 here), then the Youden cut in the gap between the classes
    platt = fit_platt(labels.astype(float), labels)
    stored = meta["presence_calibration"]
    assert (stored["temperature"], stored["offset"]) == pytest.approx(
        (platt.temperature, platt.offset))
    probs = platt.probability(labels.astype(float))
    assert meta["threshold"] == pytest.approx(gap_threshold(labels, probs))
    assert probs[labels == 0].max() < meta["threshold"] < probs[labels == 1].min()
    assert meta["threshold_counts"] == {"tp": int(labels.sum()), "fn": 0, "tn": int(
        (labels == 0).sum()), "fp": 0}
    assert json.loads((run / "run.json").read_text())["roi_model"]["presence_source"] == "head"


def test_validation_box_iou_is_measured_as_the_test_splits(finder_with_a_perfect_head):
    """The validation carve scored by evaluation's own table gives the stored figure."""
    from core.roifinder.proposals import propose_manifest

    run, val, meta, _ = finder_with_a_perfect_head
    finder = RoiFinder.from_run(run, json.loads((run / "run.json").read_text()))
    table = clean_proposals(propose_manifest(finder, val))
    assert table["truth_boxes"].map(len).sum() == int(val["roi"].sum())
    assert meta["box_iou_val"] == pytest.approx(box_iou(table)["value"], abs=1e-12)


def test_presence_source_rule():
    from core.roifinder.train import choose_presence_source

    assert choose_presence_source({"head": 0.91, "map": 0.80})[0] == "head"
    assert choose_presence_source({"head": 0.70, "map": 0.85})[0] == "map"
    assert choose_presence_source({"head": 0.80, "map": 0.80})[0] == "map"  # a tie: the map
    assert choose_presence_source({"head": None, "map": None}) == (
        "map", "no validation AUC: the map's peak, fixed in advance")
    assert choose_presence_source({})[0] == "map"


def test_saturated_raw_scores_calibrate_to_readable_probabilities():
    """Map peaks whose sigmoids all read 99.99 %+ (logits 10 to 22) are Platt-scaled to
    probabilities Platt's smoothed targets bound, and the threshold sits between the classes."""
    from core.evaluate.calibration import fit_platt
    from core.roifinder.train import gap_threshold

    logits = np.array([10.0, 11.0, 12.5, 13.0, 19.0, 20.0, 21.0, 22.0])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert (1 / (1 + np.exp(-logits)) > 0.9999).all()  # raw: no readable threshold
    cal = fit_platt(logits, y)
    probs = cal.probability(logits)
    assert probs[y == 1].min() > 0.5 > probs[y == 0].max()
    assert 0.05 < probs.min() and probs.max() < 0.95  # Platt's targets (1/6, 5/6) keep it finite
    assert probs.mean() == pytest.approx(0.5, abs=1e-4)  # at the optimum, mean p = mean target
    t = gap_threshold(y, probs)
    assert probs[y == 0].max() < t < probs[y == 1].min() and 0.05 < t < 0.95
    # overlapping classes: the Youden cut itself, moved only into the gap below it
    y2 = np.array([0, 0, 1, 0, 0, 1, 1, 1])
    p2 = np.array([0.1, 0.2, 0.25, 0.3, 0.4, 0.6, 0.7, 0.8])
    t2 = gap_threshold(y2, p2)  # Youden: 0.6 (J = 3/4 - 0); halfway to 0.4 in logit is 0.5
    assert t2 == pytest.approx(0.5)


def test_finder_without_calibration_is_refused_and_retrained_on_resume(tmp_path):
    """A finder trained before presence scores were calibrated is refused, saying what to do;
    ``--resume`` treats it as unfinished, so only the finder is trained again."""
    from core.predict import Predictor
    from core.roifinder.store import finished

    run = make_run(tmp_path / "run", modes=("baseline",))
    add_finder(run, 6.0)
    meta_path = run / ROI_DIR / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert finished(run, meta["sha256"]) is not None
    del meta["presence_calibration"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="predates calibrated presence.*retrain the run"):
        Predictor(run)
    assert finished(run, meta["sha256"]) is None


@pytest.mark.parametrize("p, t", [(0.999990, 0.999991), (0.999991, 0.999991), (0.4, 0.4000001),
                                  (0.12, 0.45), (0.45, 0.12), (1.0, 0.999999), (0.0, 1e-9)])
def test_finder_message_never_contradicts_its_numbers(p, t):
    """"found none" never beside a presence shown at or above its threshold, and a proposed
    ROI never beside one shown below it, however close the two numbers are."""
    import re

    from core.predict.types import ViewResult
    from core.review.report import routing_sentence

    r = ViewResult(image="x.png", view="RCC", roi_source="proposed", roi=p >= t,
                   roi_probability=p, roi_threshold=t, cell_roi_aware="roi-RCC")
    text = routing_sentence(r)
    shown = re.search(r"\(([\d.]+) % (<|≥) its threshold ([\d.]+) %\)", text)
    assert shown, text
    shown_p, relation, shown_t = float(shown[1]), shown[2], float(shown[3])
    if "found none" in text:
        assert not r.roi and relation == "<" and shown_p < shown_t, text
    else:
        assert r.roi and "proposed one" in text and relation == "≥" and shown_p >= shown_t, text


# --------------------------------------------------------------------------- routing

def add_finder(run: Path, presence_logit: float, size: int = 32, threshold: float = 0.5) -> None:
    """A finder whose head answers ``sigmoid(presence_logit)`` and whose map lights a square;
    its preprocessing spec is the run's at its own size (as training writes it)."""
    torch.manual_seed(0)
    model = create_finder(size)
    head = next(m for m in model.net.classification_head if isinstance(m, torch.nn.Linear))
    seg = model.net.segmentation_head[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(presence_logit)
        seg.weight.zero_()
        seg.bias.fill_(5.0)  # the whole input is "ROI": one box over the (cropped) image
    folder = run / ROI_DIR
    folder.mkdir(parents=True, exist_ok=True)
    sha = save_finder(model, folder)
    info = json.loads((run / "run.json").read_text())
    spec = replace(PreprocessParams.from_run(info), size=size)
    meta = {"arch": model.arch, "size": size, "threshold": threshold, "presence_source": "head",
            "sha256": sha, "preprocess": spec.to_json(),
            "presence_calibration": {"temperature": 1.0, "offset": 0.0}}
    (folder / "meta.json").write_text(json.dumps(meta))
    info["roi_model"] = {"status": "done", "sha256": sha, "size": size, "threshold": threshold}
    (run / "run.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def runs_with_finder(tmp_path_factory):
    root = tmp_path_factory.mktemp("roiroute")
    yes, no = make_run(root / "yes"), make_run(root / "no")
    add_finder(yes, 6.0)
    add_finder(no, -6.0)
    return {"yes": yes, "no": no, "plain": make_run(root / "plain"), "root": root}


def test_three_roi_sources_route_as_specified(runs_with_finder):
    from core.predict import Predictor, ViewInput

    root = runs_with_finder["root"]
    image = write_png(root / "RCC.png")
    mask = np.zeros((96, 80), np.uint8)
    mask[30:50, 20:40] = 1
    yes = Predictor(runs_with_finder["yes"])
    proposed, masked = yes.predict_study([ViewInput(path=image),
                                          ViewInput(path=image, mask=np.zeros_like(mask))])
    off, = yes.predict_study([ViewInput(path=image)], propose=False)
    assert (proposed.roi_source, proposed.roi) == ("proposed", True)
    assert proposed.roi_probability == pytest.approx(1 / (1 + np.exp(-6.0)), abs=1e-4)
    assert served_by(proposed.p_malignant_roi_aware) == "roi-RCC"
    (x0, y0, x1, y1), = proposed.roi_boxes
    assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 96  # the image's own pixels
    # a user's (empty) mask wins over a proposal of "ROI"
    assert (masked.roi_source, masked.roi, masked.roi_boxes) == ("mask", False, [])
    assert served_by(masked.p_malignant_roi_aware) == "noroi-RCC"
    assert (off.roi_source, off.roi, off.roi_probability) == ("none", False, None)
    assert served_by(off.p_malignant_roi_aware) == "noroi-RCC"

    no, = Predictor(runs_with_finder["no"]).predict_study([ViewInput(path=image)])
    assert (no.roi_source, no.roi, no.roi_boxes) == ("proposed", False, [])
    user, = Predictor(runs_with_finder["no"]).predict_study([ViewInput(path=image, mask=mask)])
    assert (user.roi_source, user.roi) == ("mask", True)
    assert served_by(user.p_malignant_roi_aware) == "roi-RCC"
    plain, = Predictor(runs_with_finder["plain"]).predict_study([ViewInput(path=image)])
    assert (plain.roi_source, plain.roi_probability) == ("none", None)
    assert {"roi_source", "roi_probability", "roi_boxes"} <= set(plain.summary())


@pytest.mark.parametrize("spec, said", [
    (None, "this run's ROI finder records no preprocessing spec"),
    ({"source_side": 1024}, "the ROI finder renders at a 1024-px source side, the grids at 768"),
])
def test_finder_without_the_runs_spec_is_refused(tmp_path, spec, said):
    """The finder reads the grids' rendering, so its spec must be this version's and
    share the run's source side; otherwise the run is refused, naming the file."""
    from core.predict import Predictor

    run = make_run(tmp_path / "run", modes=("baseline",))
    add_finder(run, 6.0)
    meta_path = run / ROI_DIR / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["preprocess"] = None if spec is None else {**meta["preprocess"], **spec}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=said) as err:
        Predictor(run)
    where = meta_path if spec is None else run / "run.json"
    assert str(err.value).startswith(f"{where}: ")


def test_manifest_gains_finder_routed_rows_and_table(runs_with_finder):
    from core.predict import predict_manifest

    root = runs_with_finder["root"]
    df = pd.DataFrame([{"image_path": str(write_png(root / f"m{i}_R_CC.png", seed=i)),
                        "patient_id": f"p{i}", "study_id": f"s{i}", "laterality": "R",
                        "view": "CC", "label": "benign", "mask_path": "", "roi_shapes": "",
                        "roi": False, "view_name": "RCC"} for i in range(3)])
    out = predict_manifest(runs_with_finder["yes"], df, device="cpu")
    proposed = out[out["mode"] == "roi_proposed"]
    assert len(proposed) == 3 and set(proposed["cell"]) == {"roi-RCC"}
    assert not proposed["roi"].any()  # ``roi`` stays the annotation
    assert set(out[out["mode"] == "roi"]["cell"]) == {"noroi-RCC"}
    table = out.attrs["roi_proposals"]
    assert table["roi_present"].all() and (table["truth_boxes"] == "[]").all()
    plain = predict_manifest(runs_with_finder["plain"], df, device="cpu")
    assert set(plain["mode"]) == {"baseline", "roi"} and plain.attrs["roi_proposals"] is None


def test_tampered_roi_model_is_refused(runs_with_finder, tmp_path):
    import shutil

    from core.predict import Predictor

    run = tmp_path / "run"
    shutil.copytree(runs_with_finder["yes"], run)
    weights = run / ROI_DIR / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        Predictor(run)


# --------------------------------------------------------------------------- evaluation

def _proposal_table() -> pd.DataFrame:
    """Four images (two patients): a hit, a miss with a false box, a false call, a clean one."""
    rows = [
        # image with one ROI found exactly (IoU 1) and a second ROI found at IoU 1/4
        ("a", "p1", 1, True, 0.9, True, [[0, 0, 10, 10], [20, 20, 30, 25]], [0.9, 0.6],
         [[0, 0, 10, 10], [20, 20, 30, 30]]),
        # ROI missed (no box near it), one false box
        ("b", "p1", 1, True, 0.4, False, [[50, 50, 60, 60]], [0.4], [[0, 0, 10, 10]]),
        # no ROI, called positive, one false box
        ("c", "p2", 0, False, 0.7, True, [[5, 5, 9, 9]], [0.7], []),
        # no ROI, no box
        ("d", "p2", 0, False, 0.1, False, [], [], []),
    ]
    cols = ["image_path", "patient_id", "label", "roi", "roi_probability", "roi_present",
            "boxes", "scores", "truth_boxes"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("boxes", "scores", "truth_boxes"):
        df[c] = df[c].map(json.dumps)
    df["threshold"] = 0.5
    return clean_proposals(df)


def test_box_iou_and_froc_by_hand():
    table = _proposal_table()
    # ROIs: a1 → 1, a2 → IoU([20,20,30,25],[20,20,30,30]) = 50/100 = 0.5, b1 → 0
    assert box_iou(table) == {"value": pytest.approx(1.5 / 3), "n_rois": 3}
    curve = froc(table)
    # cuts: 0.9 (a1 hit: 1/3, 0 FP), 0.7 (c's false box: 1 FP → 0.25/img),
    # 0.6 (a2 hit at IoU 0.5 ≥ 0.3: 2/3), 0.4 (b's false box: 2 FP → 0.5/img)
    assert curve["fp_per_image"] == [0.0, 0.0, 0.25, 0.25, 0.5]
    assert curve["sensitivity"] == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert curve["sensitivity_at_0.5_fp"] == pytest.approx(2 / 3)
    assert curve["sensitivity_at_1_fp"] == pytest.approx(2 / 3)
    assert froc(table, hit_iou=0.6)["sensitivity_at_1_fp"] == pytest.approx(1 / 3)


def test_presence_metrics_and_proposed_row(tmp_path):
    table = _proposal_table()
    metrics = roi_model_metrics(table, n_boot=200, seed=0)["roi_model"]
    # truth a,b present; probabilities a .9 b .4 c .7 d .1 → pairs (a>c, a>d, b<c, b>d) = 3/4
    assert metrics["presence_auc"]["value"] == pytest.approx(0.75)
    assert metrics["presence_sensitivity"]["value"] == pytest.approx(0.5)  # a called, b missed
    assert metrics["presence_specificity"]["value"] == pytest.approx(0.5)  # d cleared, c not
    assert metrics["presence_auc"]["ci_low"] is not None

    base = dict(study_id="s", view="RCC", fallback=False, threshold=0.5)
    rows = []
    for img, pid, label, roi in (("a", "p1", 1, True), ("b", "p1", 1, True),
                                 ("c", "p2", 0, False), ("d", "p2", 0, False)):
        common = dict(base, image_path=img, patient_id=pid, label=label, roi=roi)
        rows.append(dict(common, mode="baseline", cell="all-RCC", p_malignant=0.2))  # a b wrong
        rows.append(dict(common, mode="roi", cell="roi-RCC" if roi else "noroi-RCC",
                         p_malignant=0.9 if roi else 0.1))  # all right
        proposed_roi = img in ("a", "c")  # the finder's calls
        rows.append(dict(common, mode="roi_proposed", cell="roi-RCC" if proposed_roi else "noroi-RCC",
                         p_malignant=0.9 if proposed_roi else 0.1))  # a d right, b c wrong
    result = evaluate_predictions(pd.DataFrame(rows), n_boot=100)
    row = result["roi_aware_proposed"]
    assert row["sensitivity"]["value"] == pytest.approx(0.5)
    assert row["specificity"]["value"] == pytest.approx(0.5)
    assert result["roi_aware"]["sensitivity"]["value"] == pytest.approx(1.0)
    mc = result["mcnemar_proposed"]
    # vs baseline: baseline right on c, d; proposed right on a, d → only baseline c, only proposed a
    assert (mc["vs_baseline"]["at_0.5"]["b"], mc["vs_baseline"]["at_0.5"]["c"]) == (1, 1)
    # vs annotated: annotated right on all; proposed wrong on b, c
    assert (mc["vs_annotated"]["at_0.5"]["b"], mc["vs_annotated"]["at_0.5"]["c"]) == (2, 0)
    assert "roi_aware_proposed" in result["tuned"]
    plain = evaluate_predictions(pd.DataFrame([r for r in rows if r["mode"] != "roi_proposed"]),
                                 n_boot=0)
    assert "roi_aware_proposed" not in plain and "mcnemar_proposed" not in plain


# --------------------------------------------------------------------------- the grid runner

def test_train_roi_model_with_the_grids_and_resume_keeps_it(tmp_path):
    from core.train import TrainConfig, train_grid

    df = _blob_study(tmp_path / "data", 40, seed=3)
    df.loc[df.index % 4 == 1, "split"] = "test"
    df.loc[df.index % 8 == 0, "split"] = "test"
    config = TrainConfig(arch="resnet10t", img_size=32, epochs=1, batch_size=8, mode="both",
                         workers=1, roi_model=True, roi_size=32, roi_epochs=2)
    run = tmp_path / "run"
    events: list[dict] = []
    summary = train_grid(df, run, config, progress=events.append)
    entry = summary.info["roi_model"]
    assert entry["status"] == "done" and entry["size"] == 32
    assert sum(e["event"] == "roi_epoch" for e in events) == 2
    predictions = pd.read_csv(run / "predictions.csv")
    assert set(predictions["mode"]) == {"baseline", "roi", "roi_proposed"}
    assert len(pd.read_csv(run / "roi_proposals.csv")) == int((df["split"] == "test").sum())
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"roi_aware_proposed", "mcnemar_proposed", "roi_model", "roi_presence_proposed"} <= set(metrics)
    assert set(metrics["roi_model"]) >= {"presence_auc", "presence_sensitivity",
                                         "presence_specificity", "box_iou", "froc"}
    from core.runfolder.splits import leaks, read_split

    assert read_split(run / ROI_DIR)["train"]["images"]  # the finder records its split too
    assert leaks(run) == []  # no model of either grid validated on what it or its start saw

    events.clear()
    again = train_grid(df, run, TrainConfig(**{**config.__dict__, "resume": True}),
                       progress=events.append)
    assert again.info["roi_model"]["sha256"] == entry["sha256"]
    assert not any(e["event"] == "roi_epoch" for e in events)  # the finished finder was kept
    weights = run / ROI_DIR / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    events.clear()
    third = train_grid(df, run, TrainConfig(**{**config.__dict__, "resume": True}),
                       progress=events.append)
    assert sum(e["event"] == "roi_epoch" for e in events) == 2  # a changed finder is retrained
    assert third.info["roi_model"]["status"] == "done"


def test_report_prints_the_three_routings_and_the_finder():
    from core.evaluate import format_report

    table = _proposal_table()
    rows = []
    for img, pid, label, roi in (("a", "p1", 1, True), ("b", "p1", 1, True),
                                 ("c", "p2", 0, False), ("d", "p2", 0, False)):
        common = dict(image_path=img, patient_id=pid, label=label, roi=roi, study_id="s",
                      view="RCC", fallback=False, threshold=0.5)
        for mode, p in (("baseline", 0.2), ("roi", 0.9 if roi else 0.1),
                        ("roi_proposed", 0.9 if img in ("a", "c") else 0.1)):
            rows.append(dict(common, mode=mode, cell="x", p_malignant=p))
    result = evaluate_predictions(pd.DataFrame(rows), n_boot=50)
    result.update(roi_model_metrics(table, n_boot=50))
    result["run"] = {"name": "t"}
    text = format_report(result)
    assert "proposed vs baseline: p = 1.000" in text
    assert "mean best box IoU 0.50 over 3 ROIs" in text
    assert "FROC sensitivity 0.67 at 0.5" in text
    from ui.roi_view import finder_caption  # the Compare page says it in the same words

    caption = finder_caption(result)
    for words in ("at its stored threshold; mean best box IoU 0.50 over 3 ROIs",
                  "FROC sensitivity 0.67 at 0.5", "(hit = IoU ≥ 0.3)"):
        assert words in text and words in caption, words
