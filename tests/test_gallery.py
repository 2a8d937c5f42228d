"""The Data gallery's tiles: the ROI outline lands on the lesion of the cropped model input."""
from __future__ import annotations

import cv2
import numpy as np

from core.pixels.cache import load_preprocessed
from core.pixels.spec import PreprocessParams
from core.review.gallery import gallery_tile


def _breast_with_lesion(tmp_path):
    """A 96×160 frame: a breast filling only its left 70 columns (the crop keeps about
    that), a bright lesion in it, and its mask; returns the manifest row."""
    rng = np.random.default_rng(3)
    img = np.zeros((96, 160), np.uint8)
    cv2.ellipse(img, (0, 48), (70, 44), 0, -90, 90, 110, -1)
    img = np.where(img > 0, img + rng.integers(0, 20, img.shape), 0).astype(np.uint8)
    cx, cy = 50, 62
    cv2.circle(img, (cx, cy), 5, 250, -1)
    mask = np.zeros_like(img)
    cv2.circle(mask, (cx, cy), 5, 255, -1)
    cv2.imwrite(str(tmp_path / "view.png"), img)
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    row = {"image_path": str(tmp_path / "view.png"), "mask_path": str(tmp_path / "mask.png"),
           "roi_shapes": ""}
    return row


def test_gallery_outline_lands_on_the_lesion_of_the_cropped_input(tmp_path):
    row = _breast_with_lesion(tmp_path)
    params = PreprocessParams(64, clahe_clip=0.0)
    tile = gallery_tile(row, params)
    plain = load_preprocessed(row["image_path"], params, cache=None)
    assert tile.shape == (64, 64, 3)
    # Where the lesion is in the model input, read from the input's own pixels.
    ys, xs = np.nonzero(plain >= 200)
    lesion = (xs.min(), ys.min(), xs.max(), ys.max())
    assert lesion[2] - lesion[0] < 20, "the lesion is a small bright blob in the input"
    # Where the outline is drawn: coloured pixels (the input itself is grey).
    coloured = (tile.max(axis=2).astype(int) - tile.min(axis=2)) > 40
    oy, ox = np.nonzero(coloured)
    assert ox.size, "no outline drawn"
    assert ox.min() - 3 <= xs.mean() <= ox.max() + 3 and oy.min() - 3 <= ys.mean() <= oy.max() + 3
    assert lesion[0] - 4 <= ox.min() and ox.max() <= lesion[2] + 4, (ox.min(), ox.max(), lesion)
    assert lesion[1] - 4 <= oy.min() and oy.max() <= lesion[3] + 4, (oy.min(), oy.max(), lesion)
