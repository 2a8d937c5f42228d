"""Laterality and CC / MLO from the pixels, for files whose tags and name are silent.

Real screening files often say nothing: the RSNA DICOMs carry no
``ViewPosition`` and their names are numeric ids.  A radiologist tells the
view at a glance from two things, and so does this module:

* **Laterality from the chest wall.**  The breast is attached to one vertical
  image edge.  In the hanging orientation every supported source uses (VinDr,
  RSNA, CDD-CESM, the phantom), the chest wall on the image's *left* is a
  *left* breast (nipple pointing right); a right breast is the mirror image.
  The side is the end of the breast's bounding box where tissue fills the
  edge column band; the nipple end, being round, fills only a short stretch.
* **CC versus MLO from the pectoral muscle and the outline.**  An MLO view
  shows the pectoral muscle as a smooth, bright triangle in the upper
  chest-wall corner, and its outline is lopsided: the axilla keeps the breast
  wide at the top and the nipple sits below the middle of the chest-wall
  contact.  A CC view is near-symmetric about the nipple and its chest-wall
  corner holds ordinary, textured tissue.  Four measures vote (see
  :data:`POSITION_RULE`); their thresholds were set by measurement on phantom
  views and the four real RSNA views (README, "How views are found").

Everything is measured on the breast found by :func:`core.pixels.crop.tissue_mask`
(the largest bright component: burned-in labels and markers in the air are
separate, smaller components and fall away) on a copy whose longer side is
:data:`FIND_SIDE` pixels, so a call costs a few milliseconds.

When the evidence is weak the answer is ``None`` rather than a guess: a
wrong view sends the image to the wrong model without anyone noticing,
while ``None`` asks the user.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from core.pixels.crop import tissue_mask

FIND_SIDE = 256  # longer side of the copy the view is read on
EDGE_BAND = 0.03  # of the breast's width: the column band at each end of its box
MIN_LATERALITY_CONFIDENCE = 0.3
MIN_POSITION_CONFIDENCE = 0.25
_EDGE_GAP = 6  # px of the small copy: texture is not read this close to the outline
POSITION_RULE: dict[str, tuple[float, float]] = {
    # measure: (threshold, scale).  Each votes (value - threshold) / scale, clipped
    # to ±1, positive for MLO; the mean vote decides and its size is the confidence.
    "nipple_row": (0.55, 0.06),   # nipple row within the chest-wall contact (0 top, 1 bottom)
    "top_width": (0.32, 0.12),    # breast width in its top rows / its widest width
    "corner_texture": (-0.50, 0.15),  # minus fine texture of the corner / the breast's
    "corner_brightness": (1.00, 0.25),  # mean grey of the corner / the breast's
}


@dataclass(frozen=True)
class ViewGuess:
    """What the pixels say: each part None when not confident enough to route by.

    Confidences are in [0, 1]; ``measures`` holds the values the rule voted
    on (for reports and for tuning), empty when no breast was found.
    """

    laterality: str | None
    position: str | None
    laterality_confidence: float = 0.0
    position_confidence: float = 0.0
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def view(self) -> str | None:
        """``RCC`` … ``LMLO`` when both parts were found, else None."""
        return self.laterality + self.position if self.laterality and self.position else None


def find_view(img: np.ndarray) -> ViewGuess:
    """Laterality and CC / MLO of a rendered mammogram (uint8, tissue bright).

    Float images in [0, 1] are accepted too.  Returns a :class:`ViewGuess`
    whose parts are None when the breast is not found or the evidence is weak.
    """
    small = _small_copy(img)
    mask = tissue_mask(small)
    if not mask.any():
        return ViewGuess(None, None)
    (x0, x1, y0, y1), band, left, right = _edge_bands(mask)
    lat_conf = abs(left - right) / max(1.0, left + right)
    side = "L" if left >= right else "R"
    maps = [small.astype(np.float32), mask, _fine_texture(small, mask)]
    maps = [m[y0:y1, x0:x1] for m in maps]
    if side == "R":  # measure every view with its chest wall on the left
        maps = [m[:, ::-1] for m in maps]
    measures = _position_measures(*maps, band)
    votes = [float(np.clip((measures[k] - t) / s, -1.0, 1.0)) for k, (t, s) in POSITION_RULE.items()]
    score = float(np.mean(votes))
    pos_conf = abs(score)
    measures = {**measures, "left_band": left, "right_band": right, "position_score": score}
    sided = lat_conf >= MIN_LATERALITY_CONFIDENCE  # no chest wall found: no corner to read
    return ViewGuess(
        laterality=side if sided else None,
        position=("MLO" if score > 0 else "CC") if sided and pos_conf >= MIN_POSITION_CONFIDENCE
        else None,
        laterality_confidence=round(lat_conf, 3), position_confidence=round(pos_conf, 3),
        measures={k: round(float(v), 4) for k, v in measures.items()})


def chest_wall_in_pixels(img: np.ndarray) -> tuple[bool, float]:
    """``(on the left, confidence in [0, 1])`` of the breast's chest-wall edge, by the
    rule :func:`find_view` reads laterality with; ``(True, 0.0)`` when no breast is
    found.  :func:`core.pixels.orientation.chest_wall` adds the DICOM tags to it."""
    mask = tissue_mask(_small_copy(img))
    if not mask.any():
        return True, 0.0
    _, _, left, right = _edge_bands(mask)
    return left >= right, abs(left - right) / max(1.0, left + right)


def _edge_bands(mask: np.ndarray) -> tuple[tuple[int, int, int, int], int, float, float]:
    """The tissue's bounding box, the edge-band width, and tissue in its left and right
    bands: the chest wall is the side where tissue fills the band."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    band = max(2, int(round(EDGE_BAND * (x1 - x0))))
    left = float(mask[y0:y1, x0:x0 + band].sum())
    right = float(mask[y0:y1, x1 - band:x1].sum())
    return (x0, x1, y0, y1), band, left, right


def _small_copy(img: np.ndarray) -> np.ndarray:
    """uint8 copy whose longer side is :data:`FIND_SIDE`, so the measures (texture
    above all) mean the same whatever size the rendering came at."""
    img = np.asarray(img)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(np.rint(np.nan_to_num(img.astype(np.float32)) * 255), 0, 255).astype(np.uint8)
    h, w = img.shape
    scale = FIND_SIDE / max(h, w)
    if scale == 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _fine_texture(small: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """|difference of Gaussians| (sigma 0.8 and 3 px): the fine texture of the tissue.

    NaN near the breast's outline, where the tissue/air edge would swamp the
    texture (an MLO cut straight across at the top would look "rough"); the
    image's own borders are not outlines and are kept.
    """
    grey = small.astype(np.float32)
    fine = np.abs(cv2.GaussianBlur(grey, (0, 0), 0.8) - cv2.GaussianBlur(grey, (0, 0), 3.0))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * _EDGE_GAP + 1,) * 2, np.uint8))
    return np.where(inner > 0, fine, np.nan).astype(np.float32)


def _position_measures(grey: np.ndarray, part: np.ndarray, fine: np.ndarray,
                       band: int) -> dict[str, float]:
    """The CC / MLO measures of a breast cropped to its box, chest wall on the left."""
    h, w = part.shape
    width = part.sum(axis=1).astype(np.float64)  # per row: how far the breast reaches
    contact = np.nonzero(part[:, :band].mean(axis=1) > 0.5)[0]
    top, bottom = (contact.min(), contact.max()) if contact.size else (0, h - 1)
    span = max(1, bottom - top)
    nipple = int(np.argmax(width))
    widest = max(1.0, width.max())
    # the corner where an MLO's pectoral muscle lies: a triangle on the chest wall,
    # 22 % of the breast's depth wide and 30 % of the chest-wall contact high
    yy, xx = np.mgrid[0:h, 0:w]
    corner = ((xx / (0.22 * widest) + (yy - top) / (0.3 * span)) < 1) & (yy >= top) & part
    if corner.sum() < 4:
        corner = part
    corner_fine = fine[corner]
    corner_fine = corner_fine[np.isfinite(corner_fine)]
    all_fine = fine[np.isfinite(fine)]
    return {
        "nipple_row": (nipple - top) / span,
        "top_width": float(width[:max(1, h // 20)].mean() / widest),
        "corner_texture": -float(corner_fine.mean() / max(1e-6, all_fine.mean()))
        if corner_fine.size and all_fine.size else POSITION_RULE["corner_texture"][0],
        "corner_brightness": float(grey[corner].mean() / max(1e-6, grey[part].mean())),
    }
