"""The breast crop: found on phantom views with labels and an off-centre breast,
on real exams, and masks / maps carried through it and back."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.phantom import render_view
from core.phantom.lesions import Lesion
from core.pixels.crop import CropBox, find_breast, map_to_full, mask_to_input, tissue_mask
from core.pixels.preprocess import prepare_input
from core.pixels.spec import PreprocessParams

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-mammograms" / "rsna-10008"
REPO = Path(__file__).resolve().parents[1]


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("view", ["RCC", "LCC", "RMLO", "LMLO"])
def test_box_holds_the_breast_and_not_the_label(view, seed):
    plain, _ = render_view(np.random.default_rng(seed), view, "C", size=384, labels=False)
    labelled, _ = render_view(np.random.default_rng(seed), view, "C", size=384)
    label = labelled != plain
    assert label.sum() > 50  # the view is burned in
    box = find_breast(_u8(labelled))
    x0, y0, x1, y1 = box.pixels(labelled.shape)
    breast = plain > 0
    ys, xs = np.nonzero(breast)
    # all but the faintest skin-line sliver (darker than the air threshold) is inside
    assert breast[y0:y1, x0:x1].sum() >= 0.998 * breast.sum()
    assert not label[y0:y1, x0:x1].any()
    # tight: a 2 % margin plus the smoothing halo, no more
    h, w = plain.shape
    assert xs.min() - x0 <= 0.03 * w and x1 - 1 - xs.max() <= 0.03 * w
    assert ys.min() - y0 <= 0.03 * h and y1 - 1 - ys.max() <= 0.03 * h


def test_the_phantom_breast_does_not_fill_the_detector():
    shares = [tissue_mask(_u8(render_view(np.random.default_rng(s), v, "B", size=256)[0])).mean()
              for s in range(4) for v in ("LCC", "RMLO")]
    assert 0.2 < np.median(shares) < 0.6


def test_blank_and_tiny_images_keep_the_whole_frame():
    assert find_breast(np.zeros((100, 80), np.uint8)).is_full
    speck = np.zeros((100, 80), np.uint8)
    speck[10:13, 10:13] = 200  # under MIN_AREA: a marker, not a breast
    assert find_breast(speck).is_full


def test_mask_goes_in_and_map_comes_back_at_the_same_place():
    shape = (600, 400)
    box = CropBox(0.1, 0.2, 0.7, 0.9)
    mask = np.zeros(shape, np.uint8)
    mask[300:360, 150:190] = 1  # in box pixels: x 40..80 of 240, y 180..240 of 420
    small = mask_to_input(mask, box, 96)
    ys, xs = np.nonzero(small)
    assert abs(xs.mean() - (170 - 40) / 240 * 96) < 1.5
    assert abs(ys.mean() - (330 - 120) / 420 * 96) < 1.5
    back = map_to_full(small.astype(np.float32), box, shape) > 0.5
    inter, union = (back & (mask > 0)).sum(), (back | (mask > 0)).sum()
    assert inter / union > 0.85
    assert not back[:120].any() and not back[:, :40].any()  # outside the crop: nothing


def test_map_peak_lands_on_the_lesion_of_a_phantom_view():
    lesion = Lesion("malignant_mass", 0.5, 0.0, 1.0, shape_seed=5)
    img, drawn = render_view(np.random.default_rng(3), "RMLO", "B", [lesion], size=512)
    params = PreprocessParams(128)
    x, box = prepare_input(_u8(img), params)
    # the lesion's own mask through the crop gives the "model" map; back on the frame,
    # its peak must sit inside the lesion's box
    full = np.zeros(img.shape, np.uint8)
    bx0, by0, bx1, by1 = (int(round(v)) for v in drawn[0]["box"])
    full[by0:by1, bx0:bx1] = 1
    cam = cv2.GaussianBlur(mask_to_input(full, box, 128).astype(np.float32), (0, 0), 2)
    back = map_to_full(cam, box, img.shape)
    py, px = np.unravel_index(np.argmax(back), back.shape)
    assert bx0 <= px <= bx1 and by0 <= py <= by1


def test_squared_box_keeps_the_aspect_and_pads_with_air():
    img = np.zeros((200, 100), np.uint8)
    img[50:150, 0:40] = 180
    box = find_breast(img).squared(img.shape)
    part = box.crop(img)
    assert abs(part.shape[0] - part.shape[1]) <= 2
    assert box.x0 < 0 and part[:, :5].max() == 0  # beyond the image: air


def test_crop_is_a_parameter_of_the_input_and_the_cache_key(tmp_path):
    from core.pixels.cache import PreprocessCache

    img, _ = render_view(np.random.default_rng(1), "LCC", "B", size=256)
    path = tmp_path / "view.png"
    cv2.imwrite(str(path), _u8(img))
    cache = PreprocessCache(tmp_path / "cache")
    cropped = cache.key(path, PreprocessParams(64))
    whole = cache.key(path, PreprocessParams(64, crop=False))
    assert cropped != whole
    a, box_a = prepare_input(_u8(img), PreprocessParams(64))
    b, box_b = prepare_input(_u8(img), PreprocessParams(64, crop=False))
    assert box_b.is_full and not box_a.is_full and not np.array_equal(a, b)


def test_cli_no_crop(tmp_path):
    img, _ = render_view(np.random.default_rng(2), "RCC", "B", size=256)
    src = tmp_path / "v.png"
    cv2.imwrite(str(src), _u8(img))
    outs = []
    for extra in ([], ["--no-crop"]):
        out = tmp_path / f"out{len(outs)}.png"
        subprocess.run([sys.executable, "-m", "core", "preprocess", str(src), "--size", "64",
                        "--out", str(out), *extra], check=True, cwd=REPO, capture_output=True)
        outs.append(cv2.imread(str(out), cv2.IMREAD_GRAYSCALE))
    # the whole frame keeps the air beside the breast; the crop does not
    air = [float((o <= o.min() + 2).mean()) for o in outs]  # CLAHE lifts air off zero
    assert air[1] > air[0] + 0.2


# Boxes around the breast tissue of the four real views (RSNA patient 10008, 2776 × 2082),
# drawn by eye on 4x-reduced renderings with a 200-px grid: (x0, y0, x1, y1) in original
# pixels, generous (skin line and nipple inside).  Independent of tissue_mask, which makes
# the crop.  The laterality is the file's ImageLaterality (views.csv).
HAND_BOXES = {
    "1591370361": ((0, 0, 1400, 2460), "L"),  # LCC: chest wall on the left edge
    "361203119": ((690, 200, 2082, 2700), "R"),  # RCC: nipple at x ≈ 700
    "68070693": ((540, 0, 2082, 2776), "R"),  # RMLO: axilla across the top, skin x ≈ 560
    "736471439": ((0, 0, 1600, 2600), "L"),  # LMLO
}
EYE_SLACK = 20  # px: how far off a box drawn by eye on a 4x-reduced copy may be
MIN_IOU = 0.85  # the crop holds the breast and little air (the whole frame scores 0.60-0.74)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-mammograms is absent (kept out of the repo)")
@pytest.mark.parametrize("stem", sorted(HAND_BOXES))
def test_real_exam_crop_holds_the_hand_drawn_breast_box(stem):
    from core.pixels.orientation import chest_wall
    from core.pixels.read import render_uint8
    from core.roifinder.geometry import iou

    (hx0, hy0, hx1, hy1), laterality = HAND_BOXES[stem]
    rendering = render_uint8(REAL / f"{stem}.dcm", 768)
    _, box = prepare_input(rendering.pixels, PreprocessParams(256))
    cx0, cy0, cx1, cy1 = box.pixels(rendering.source_shape)
    assert (cx0 <= hx0 + EYE_SLACK and cy0 <= hy0 + EYE_SLACK and cx1 >= hx1 - EYE_SLACK
            and cy1 >= hy1 - EYE_SLACK), ((cx0, cy0, cx1, cy1), HAND_BOXES[stem][0])
    assert iou((cx0, cy0, cx1, cy1), HAND_BOXES[stem][0]) >= MIN_IOU
    # the chest wall the model input is turned by is where the breast's laterality puts it
    assert chest_wall(rendering.pixels).on_left == (laterality == "L")
    assert box.mirrored == (laterality == "R")
