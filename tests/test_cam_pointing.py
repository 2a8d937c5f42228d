"""Grad-CAM pointing: the pure score on hand-made maps, the CAM methods, and a run's pointing.

The score is checked on maps whose answer is known by construction: a peak
inside the ROI, one just outside but within the 2 % dilation, one far away,
and the chance level counted pixel by pixel.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.evaluate.pointing import dilate_mask, map_peak, pointing_hits, pointing_score

SIDE = 100  # 2 % of 100 px = a 2-pixel dilation


def _mask() -> np.ndarray:
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[10:20, 30:40] = 1  # a 10 × 10 ROI: rows 10..19, columns 30..39
    return mask


def _peak_at(row: int, col: int) -> np.ndarray:
    cam = np.random.default_rng(row * SIDE + col).random((SIDE, SIDE)).astype(np.float32) * 0.5
    cam[row, col] = 1.0
    return cam


def test_dilation_is_euclidean_two_percent_of_the_side():
    grown = dilate_mask(_mask())
    # 10×10 square + four 10×2 bands + per corner the one offset (1, 1) within radius 2
    assert grown.sum() == 100 + 4 * 20 + 4
    assert grown[21, 35] and grown[10, 28] and grown[20, 40]  # 2 px below, 2 px left, (1, 1) diagonal
    assert not grown[22, 35] and not grown[21, 41]  # 3 px below; (2, 2) diagonal is 2.83 px
    assert not dilate_mask(np.zeros((8, 8))).any()


def test_hits_inside_within_dilation_and_far_away():
    maps = [_peak_at(15, 35), _peak_at(21, 35), _peak_at(22, 35), _peak_at(80, 80)]
    hits, shares = pointing_hits(maps, [_mask()] * 4)
    assert hits.tolist() == [True, True, False, False]
    assert np.allclose(shares, 184 / SIDE**2)
    score = pointing_score(maps, [_mask()] * 4)
    assert score == {"hit_rate": 0.5, "n": 4, "chance": pytest.approx(0.0184)}


def test_chance_is_the_mean_dilated_share_over_images():
    big = np.zeros((SIDE, SIDE), np.uint8)
    big[:50, :] = 1  # half the image; dilation adds rows 50 and 51
    score = pointing_score([_peak_at(90, 90), _peak_at(5, 5)], [_mask(), big])
    assert score["chance"] == pytest.approx((0.0184 + 0.52) / 2)
    assert score["hit_rate"] == 0.5 and score["n"] == 2


def test_flat_map_points_nowhere_and_no_images_gives_nulls():
    assert map_peak(np.zeros((4, 4))) is None
    assert map_peak(np.full((4, 4), np.nan)) is None
    assert pointing_score([np.zeros((SIDE, SIDE))], [_mask()])["hit_rate"] == 0.0
    assert pointing_score([], []) == {"hit_rate": None, "n": 0, "chance": None}


def test_mismatched_coordinates_and_empty_masks_are_refused():
    with pytest.raises(ValueError, match="coordinates"):
        pointing_hits([np.zeros((50, 50))], [_mask()])
    with pytest.raises(ValueError, match="empty"):
        pointing_hits([_peak_at(1, 1)], [np.zeros((SIDE, SIDE))])
    with pytest.raises(ValueError, match="2 maps but 1 masks"):
        pointing_hits([_peak_at(1, 1)] * 2, [_mask()])


# --------------------------------------------------------------------------- CAM methods

@pytest.mark.parametrize("arch", ("resnet10t", "convnextv2_atto", "swin_micro"))
def test_every_cam_method_gives_input_sized_maps(arch, one_thread):
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.models import CAM_METHODS, CAM_RECIPES, CamRecipe, arch_spec, create_model, make_cam

    torch.manual_seed(0)
    model = create_model(arch, 64).eval()
    x = torch.rand(2, 1, 64, 64)
    for method in CAM_METHODS:
        for stages in ((-1,), (-2,), (-3, -2, -1)):
            cam = make_cam(model, CamRecipe(method, stages))
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * 2)
            cam.activations_and_grads.release()
            assert maps.shape == (2, 64, 64) and np.isfinite(maps).all(), (method, stages)
    assert arch_spec(arch).family in CAM_RECIPES
    with pytest.raises(ValueError, match="unknown CAM method"):
        make_cam(model, CamRecipe("magic"))


# --------------------------------------------------------------------------- a run's pointing

def _manifest(root) -> pd.DataFrame:
    """Two malignant views whose bright spot sits at rows 40-51, columns 44-55 of a breast
    that fills the left 64 of 160 columns (the crop cuts the air on the right).  The
    first view's ROI is on the spot, the second's far from it, the third's in the air the
    crop removes; a benign view with an ROI and a malignant one without are not scored."""
    import cv2

    from core.datasets.manifest import finalize

    rng = np.random.default_rng(0)
    rows = []
    for i, (r0, c0) in enumerate(((40, 44), (120, 10), (80, 130))):
        img = np.zeros((160, 160), np.uint8)
        img[:, :64] = np.clip(rng.normal(110, 8, (160, 64)), 0, 255).astype(np.uint8)
        img[40:52, 44:56] = 250
        mask = np.zeros_like(img)
        mask[r0:r0 + 12, c0:c0 + 12] = 255
        cv2.imwrite(str(root / f"v{i}.png"), img)
        cv2.imwrite(str(root / f"m{i}.png"), mask)
        rows.append({"image_path": f"v{i}.png", "patient_id": f"p{i}", "study_id": f"s{i}",
                     "laterality": "L", "view": "CC", "label": "malignant",
                     "mask_path": f"m{i}.png", "split": "test"})
        cv2.imwrite(str(root / f"u{i}.png"), img)  # not scored: benign / malignant without ROI
    unscored = [dict(rows[0], image_path="u0.png", label="benign"),
                dict(rows[0], image_path="u1.png", mask_path="")]
    return finalize(pd.DataFrame(rows + unscored), root)


def test_run_pointing_maps_masks_through_the_input_geometry(tmp_path, monkeypatch, one_thread):
    """With the model input itself as the "CAM", its peak is the bright spot: a hit
    exactly when the ROI was carried through the same crop and resize as the pixels."""
    from test_predict import make_run

    from core.evaluate.pointing import dilate_mask
    from core.pixels.cache import load_preprocessed_with_box
    from core.pixels.crop import CropBox, mask_to_input
    from core.pixels.spec import PreprocessParams
    from core.predict import Predictor
    from core.predict.cam_pointing import run_cam_pointing

    df = _manifest(tmp_path)
    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    info["preprocess"] = PreprocessParams(64).to_json()  # the breast crop on
    (run / "run.json").write_text(json.dumps(info))
    predictor = Predictor(run, "cpu")
    _, box = load_preprocessed_with_box(df.at[0, "image_path"], predictor.params)
    assert box.x1 < 0.5  # the crop is in play: the air on the right is cut
    monkeypatch.setattr(predictor, "probabilities_and_cams",
                        lambda cell, images: (np.zeros(len(images)), images / 255.0))
    result = run_cam_pointing(predictor, df)
    masks = [mask_to_input(cv2_read(tmp_path / f"m{i}.png"), box, predictor.img_size)
             for i in range(2)]
    chance = float(np.mean([dilate_mask(m).mean() for m in masks]))
    for grid in ("baseline", "roi_aware"):
        assert result[grid] == {"hit_rate": 0.5, "n": 2, "chance": pytest.approx(chance)}
    # the check can fail: the whole-frame resize of the first ROI lies off the spot
    spot = np.unravel_index(np.argmax(load_preprocessed_with_box(df.at[0, "image_path"],
                                                                 predictor.params)[0]), (64, 64))
    whole = cv2_read(tmp_path / "m0.png")
    assert dilate_mask(mask_to_input(whole, box, 64))[spot]
    assert not dilate_mask(mask_to_input(whole, CropBox.full(), 64))[spot]
    assert result["method"] and result["dilation"] == 0.02 and result["roi_outside_input"] == 1


def cv2_read(path) -> np.ndarray:
    import cv2

    return (cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0).astype(np.uint8)


def test_benchmark_scores_each_recipe(tmp_path, one_thread):
    from test_predict import make_run

    from benchmarks.cam_pointing import measure, parse_recipe
    from core.models import CamRecipe

    assert parse_recipe("layercam:-3,-2,-1") == CamRecipe("layercam", (-3, -2, -1))
    assert parse_recipe("gradcam") == CamRecipe("gradcam", (-1,))
    df = _manifest(tmp_path)
    df[["image_path", "patient_id", "study_id", "laterality", "view", "label", "mask_path",
        "split"]].to_csv(tmp_path / "manifest.csv", index=False)
    result = measure(str(make_run(tmp_path / "run")), str(tmp_path / "manifest.csv"), "test",
                     ["gradcam:-1", "layercam:-3,-2,-1"], pool_views=True, device="cpu")
    assert [r["recipe"] for r in result["recipes"]] == ["GradCAM on stage -1",
                                                        "LayerCAM on stages -3, -2, -1"]
    assert all(r["n"] == 3 and 0 < r["baseline_chance"] < 1 for r in result["recipes"])
