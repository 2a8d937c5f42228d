"""Grad-CAM pointing: the pure score on hand-made maps, the CAM methods, and a run's pointing.

The score is checked on maps whose answer is known by construction: a peak
inside the ROI, one just outside but within the 2 % dilation, one far away,
and the chance level counted pixel by pixel.
"""
from __future__ import annotations

import numpy as np
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
