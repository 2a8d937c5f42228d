"""One breast laid out on a canvas: outline, thickness, fibroglandular tissue,
pectoral muscle and vessels.

The canvas has the chest wall at x = 0; :mod:`core.phantom.render` mirrors
right-breast views at the end, so everything here draws one orientation only.
MLO views carry the pectoral muscle in the upper chest-wall corner.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.phantom.noise import power_noise, radial_streaks, sigmoid, smoothstep

# Fraction of the breast area that is fibroglandular, per BI-RADS density.
_GLAND_FRACTION = {"A": 0.10, "B": 0.28, "C": 0.50, "D": 0.74}


@dataclass
class Scene:
    """A breast in canvas coordinates (chest wall at x = 0), before flipping."""

    h: int
    w: int
    mask: np.ndarray
    dist: np.ndarray
    thickness: np.ndarray
    gland: np.ndarray
    pectoral: np.ndarray
    fine: np.ndarray
    coarse: np.ndarray
    strands: np.ndarray
    vessels: np.ndarray
    nipple: tuple[float, float]
    mid: np.ndarray
    half: np.ndarray
    flip: bool


def _outline(rng: np.random.Generator, h: int, w: int, mlo: bool) -> tuple[np.ndarray, float]:
    """Breast extent per row (x of the skin, 0 = chest wall) and the nipple row."""
    t = np.arange(h, dtype=np.float32) / h
    depth = w * rng.uniform(0.70, 0.90)
    if mlo:
        ts = np.array([0.0, 0.12, 0.30, 0.50, 0.62, 0.75, 0.86, 0.93, 0.99])
        ss = np.array([0.46, 0.58, 0.78, 0.95, 1.0, 0.93, 0.72, 0.42, 0.08])
        ts = ts + np.r_[0, rng.uniform(-0.02, 0.02, len(ts) - 1)]
        ts[-1] = rng.uniform(0.95, 1.1)
        ts[1:-1] *= ts[-1] / 0.99
        ss = np.clip(ss + rng.uniform(-0.04, 0.04, len(ss)), 0, 1)
        ss[4] = 1.0
        prof = np.interp(t, ts, ss, right=0.0)
    else:
        yc = rng.uniform(0.46, 0.54)
        a_top, a_bot = rng.uniform(0.37, 0.46, 2)
        p = rng.uniform(1.8, 2.4)
        dy = (t - yc) / np.where(t < yc, a_top, a_bot)
        prof = np.clip(1 - np.abs(dy) ** p, 0, 1) ** (1 / p)
    prof = cv2.GaussianBlur(prof.reshape(-1, 1).astype(np.float32), (0, 0), sigmaX=0.1,
                            sigmaY=h * 0.03).ravel()
    y_n = float(np.argmax(prof))
    bump = 0.018 * w * np.exp(-(((np.arange(h) - y_n) / (0.018 * h)) ** 2))
    return (prof * depth + bump).astype(np.float32), y_n


def _pectoral(rng: np.random.Generator, h: int, w: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Soft 0..1 map of the pectoral muscle: a slightly convex triangle in the
    upper chest-wall corner of an MLO view."""
    pw, ph = w * rng.uniform(0.24, 0.40), h * rng.uniform(0.35, 0.58)
    bow = rng.uniform(0.04, 0.14)
    v = yy / ph
    edge = xx / pw + v - bow * 4 * np.clip(v, 0, 1) * np.clip(1 - v, 0, 1)
    return sigmoid((1.0 - edge) * min(pw, ph) / 3.0).astype(np.float32)


def _vessels(rng: np.random.Generator, h: int, w: int, mask: np.ndarray,
             outline: np.ndarray) -> np.ndarray:
    """A few thin winding vessels running from the chest wall toward the nipple."""
    canvas = np.zeros((h, w), np.float32)
    thick = max(1, int(round(h / 600)))
    rows = np.flatnonzero(outline > 0.3 * outline.max())
    for _ in range(int(rng.integers(2, 5))):
        y0 = float(rng.choice(rows)) if len(rows) else h / 2
        ang = rng.uniform(-0.5, 0.5) + np.cumsum(rng.normal(0, 0.12, 60))
        xs = np.r_[0.0, np.cumsum(np.cos(ang))] * (h / 100)
        ys = y0 + np.r_[0.0, np.cumsum(np.sin(ang))] * (h / 100)
        row = np.clip(ys, 0, h - 1).astype(int)
        stop = (ys < 0) | (ys >= h) | (xs >= outline[row] * rng.uniform(0.6, 0.95))
        n = int(np.argmax(stop)) if stop.any() else len(xs)
        if n > 2:
            pts = np.round(np.stack([xs[:n], ys[:n]], 1) * 4).astype(np.int32)
            cv2.polylines(canvas, [pts], False, float(rng.uniform(0.5, 1.0)), thick, cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(canvas, (0, 0), 0.7) * mask


def make_scene(rng: np.random.Generator, view: str, density: str, h: int, w: int) -> Scene:
    """Lay out one breast: outline, skin distance, thickness fall-off, glandular
    tissue at the density's area fraction, pectoral muscle, vessels.

    The smooth fields are built on a half-resolution grid and enlarged: they
    hold no detail that needs more, and it halves the cost of a dataset.
    """
    mlo = view.endswith("MLO")
    outline, y_n = _outline(rng, h, w, mlo)
    mask = np.arange(w, dtype=np.float32)[None, :] < outline[:, None]
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    thickness = (1 - np.exp(-dist / np.float32(0.05 * w))) ** np.float32(0.8)
    nipple = (float(outline[int(y_n)]), y_n)
    cols = mask.any(0)
    top = np.where(cols, mask.argmax(0), 0).astype(np.float32)
    bot = np.where(cols, h - 1 - mask[::-1].argmax(0), 0).astype(np.float32)
    mid, half = (top + bot) / 2, np.maximum((bot - top) / 2, 1.0)

    hs, ws = (h + 1) // 2, (w + 1) // 2
    yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float32) * 2  # full-resolution coordinates
    inside_s = mask[::2, ::2]
    coarse = power_noise(rng, hs, ws, 3.2, step=2)
    fine = power_noise(rng, h, w, 2.0, step=2)
    streaks = radial_streaks(rng, hs, ws, (nipple[0] / 2, nipple[1] / 2))
    from_nipple = np.hypot(xx - nipple[0], yy - nipple[1]) / max(nipple[0], 1.0)
    # zero crossings of the ray-stretched field: thin strands converging on the nipple
    strands = np.exp(-(streaks / 0.22) ** 2) * smoothstep(from_nipple, 0.05, 0.3)
    axial = 1 - xx / max(nipple[0], 1.0)  # 0 at nipple, 1 at chest wall
    across = (yy - mid[None, ::2]) / half[None, ::2]
    prior = np.exp(-(across / 0.6) ** 2) * smoothstep(axial, 0.0, 0.12) * (1 - 0.5 * smoothstep(axial, 0.7, 1.0))
    pect = _pectoral(rng, h, w, xx, yy) * inside_s if mlo else np.zeros((hs, ws), np.float32)
    raw = 1.0 * prior + 0.75 * coarse + 0.12 * streaks + 0.1 * fine[::2, ::2] - 2.0 * pect
    frac = float(np.clip(_GLAND_FRACTION[density] + rng.uniform(-0.04, 0.04), 0.03, 0.95))
    inside = raw[inside_s]
    q = float(np.quantile(inside, 1 - frac)) if inside.size else 0.0
    gland = sigmoid((raw - q) / (0.3 * float(inside.std() if inside.size else 1.0)))

    def up(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) * mask

    return Scene(h, w, mask, dist, thickness.astype(np.float32), up(gland), up(pect), fine,
                 up(coarse), up(strands), _vessels(rng, h, w, mask, outline), nipple, mid, half,
                 flip=view.startswith("R"))
