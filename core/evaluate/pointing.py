"""Grad-CAM pointing: does a map's peak fall on the annotated lesion?

A saliency map that "looks plausible" is not evidence; the pointing game is
a number that can fail.  For every malignant image with an ROI, the map's
peak (its argmax) is a hit when it lies inside the ROI dilated by
:data:`DILATION_FRACTION` of the image side, which forgives the one-pixel
offsets of upsampling a coarse map.  ``chance`` is what a peak thrown
uniformly at random would score: the dilated ROI's mean share of the image.
A hit rate near chance means the maps do not point at the lesion.

Maps and masks must be in the same coordinates (the model's input); this
module is pure arithmetic on arrays, so it is tested with hand-made maps.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

DILATION_FRACTION = 0.02


def dilate_mask(mask: np.ndarray, fraction: float = DILATION_FRACTION) -> np.ndarray:
    """Pixels within ``fraction`` × the image side (Euclidean) of the mask, as bool.

    The side is the larger of height and width; for the square model input
    both are the same.  An empty mask stays empty.
    """
    mask = np.asarray(mask) > 0
    if not mask.any():
        return mask
    radius = fraction * max(mask.shape)
    # distance of every pixel to the nearest ROI pixel (0 inside the ROI)
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist <= radius


def map_peak(cam: np.ndarray) -> tuple[int, int] | None:
    """``(row, col)`` of the map's maximum; None for a flat (or all-NaN) map, which points nowhere."""
    cam = np.nan_to_num(np.asarray(cam, np.float64), nan=-np.inf)
    if not np.isfinite(cam).any() or cam.max() == cam.min():
        return None
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(row), int(col)


def pointing_hits(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                  fraction: float = DILATION_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (hit?, dilated ROI's area share).  Images whose mask is empty are refused."""
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    hits = np.zeros(len(maps), bool)
    shares = np.zeros(len(maps), np.float64)
    for i, (cam, mask) in enumerate(zip(maps, masks)):
        if np.shape(cam) != np.shape(mask):
            raise ValueError(f"map {i} is {np.shape(cam)} but its mask is {np.shape(mask)}: "
                             "both must be in the model input's coordinates")
        region = dilate_mask(mask, fraction)
        if not region.any():
            raise ValueError(f"mask {i} is empty: only images with an ROI are scored")
        peak = map_peak(cam)
        hits[i] = peak is not None and bool(region[peak])
        shares[i] = float(region.mean())
    return hits, shares


def pointing_score(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   fraction: float = DILATION_FRACTION) -> dict[str, Any]:
    """``{"hit_rate", "n", "chance"}``; both rates are None (JSON null) when ``n`` is 0."""
    hits, shares = pointing_hits(maps, masks, fraction)
    n = len(hits)
    return {"hit_rate": float(hits.mean()) if n else None, "n": n,
            "chance": float(shares.mean()) if n else None}
