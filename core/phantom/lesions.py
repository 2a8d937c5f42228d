"""Lesions: what a breast carries (:class:`Lesion`) and how each kind is drawn.

Benign masses are round and circumscribed, malignant ones irregular and
spiculated; calcification clusters are fine and lined up when malignant,
coarse when benign.  Drawing returns each lesion's shape and box in canvas
pixels, which the writers turn into the annotations of their layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.phantom.anatomy import Scene
from core.phantom.noise import sigmoid

# What "easy" (difficulty 0) adds to a malignant finding's multipliers at "obvious" (0.15).
CONTRAST_BOOST, SIZE_BOOST, SPECK_BOOST = 1.0, 1.0, 3.0


@dataclass(frozen=True)
class Lesion:
    """One lesion as the breast carries it, independent of the projection.

    ``depth`` runs from the chest wall (0) to the nipple (1), ``offset`` across
    the breast (-1..1); ``conspicuity`` < 1 draws it faint (hidden in tissue);
    ``at_edge`` puts it against the chest wall so its box runs slightly off the
    image, as real boxes sometimes do.
    """

    kind: str  # benign_mass | malignant_mass | calcifications | benign_calcifications
    depth: float
    offset: float
    scale: float
    shape_seed: int
    conspicuity: float = 1.0
    at_edge: bool = False

    @property
    def category(self) -> str:
        """The VinDr finding category the lesion is annotated with."""
        return "Mass" if self.kind.endswith("mass") else "Suspicious Calcification"


def _lesion_strength(difficulty: float, malignant: bool = True) -> tuple[float, float, float]:
    """Contrast, size and calcification-speck multipliers: an obvious lesion is big and bright.

    From "obvious" (0.15) to "subtle" (0.85) contrast and size fall linearly
    and specks keep their real size; "subtle" is near the size and contrast
    of the faint findings a screening reader misses, and at "obvious"
    calcification specks are already below a pixel at 96 px, as real ones are.
    Below "obvious" malignant findings alone grow further, up to "easy" (0.0):
    a large, bright, plainly spiculated mass, or a calcification cluster with
    specks four times as wide and twice as many, both still clear after
    reduction to 64-128 px and CLAHE;
    benign findings only follow the linear trend (12 % above "obvious" at
    0.0).  "easy" is what the learning test trains a tiny model on from
    scratch (tests/test_train.py).
    """
    boost = max(0.0, 0.15 - difficulty) / 0.15 if malignant else 0.0  # 0 from "obvious" on
    return (2.2 - 1.6 * difficulty + CONTRAST_BOOST * boost,
            2.0 - 1.4 * difficulty + SIZE_BOOST * boost,
            1.0 + SPECK_BOOST * boost)


def _place(scene: Scene, lesion: Lesion, radius: float) -> tuple[float, float]:
    """Centre of a lesion in canvas coordinates: inside the breast, off the
    pectoral muscle, as close as possible to its preferred depth / offset."""
    h, w = scene.h, scene.w
    if lesion.at_edge:
        px = 0.35 * radius
        ys = np.flatnonzero(scene.mask[:, 0] & (scene.pectoral[:, 0] < 0.05))
        ys = ys[(ys > radius * 1.5) & (ys < h - radius * 1.5)]
        py = float(ys[int(len(ys) * (0.5 + 0.3 * lesion.offset))]) if len(ys) else h / 2
        return px, py
    px = float(np.clip(lesion.depth * scene.nipple[0], radius, w - radius))
    ix = int(np.clip(px, 0, w - 1))
    py = float(scene.mid[ix] + 0.75 * lesion.offset * scene.half[ix])
    ok = (scene.dist > radius * 1.3) & (scene.pectoral < 0.1)
    if not ok.any():
        ok = scene.dist >= scene.dist.max() * 0.9
    ys, xs = np.nonzero(ok[::2, ::2])
    k = int(np.argmin((xs * 2 - px) ** 2 + (ys * 2 - py) ** 2))
    return float(xs[k] * 2), float(ys[k] * 2)


def _local_grid(h: int, w: int, cx: float, cy: float, reach: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Window around a lesion, so drawing costs its size, not the image's."""
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return slice(y0, y1), slice(x0, x1), xx - cx, yy - cy


def _bbox(xs: np.ndarray, ys: np.ndarray, pad: float) -> tuple[float, float, float, float]:
    return (float(xs.min() - pad), float(ys.min() - pad), float(xs.max() + pad), float(ys.max() + pad))


def _draw_benign_mass(scene: Scene, rng: np.random.Generator, cx: float, cy: float, r: float,
                      contrast: float, out: np.ndarray, enh: np.ndarray) -> dict[str, Any]:
    """Round / oval, circumscribed, smooth: what BI-RADS calls probably benign."""
    rx, ry, theta = r, r * rng.uniform(0.65, 1.0), rng.uniform(0, math.pi)
    sy, sx, dx, dy = _local_grid(scene.h, scene.w, cx, cy, r * 1.6)
    c, s = math.cos(theta), math.sin(theta)
    rho = np.sqrt(((dx * c + dy * s) / rx) ** 2 + ((-dx * s + dy * c) / ry) ** 2)
    body = sigmoid((1 - rho) / 0.05) * (0.7 + 0.3 * np.sqrt(np.clip(1 - rho ** 2, 0, 1)))
    halo = -0.25 * np.exp(-((rho - 1.1) / 0.06) ** 2) if rng.random() < 0.4 else 0.0
    out[sy, sx] += contrast * 0.24 * (body + halo)
    enh[sy, sx] += 0.12 * contrast * body
    ex, ey = math.hypot(rx * c, ry * s), math.hypot(rx * s, ry * c)
    return {"shape": {"type": "ellipse", "cx": cx, "cy": cy, "rx": rx, "ry": ry, "theta": theta},
            "box": (cx - ex - 2, cy - ey - 2, cx + ex + 2, cy + ey + 2)}


def _draw_malignant_mass(scene: Scene, rng: np.random.Generator, cx: float, cy: float, r: float,
                         contrast: float, out: np.ndarray, enh: np.ndarray) -> dict[str, Any]:
    """Irregular, ill-defined core with tapering spicules radiating from it."""
    ks = np.arange(2, 8)
    amp = rng.uniform(0, 0.22, len(ks)) / ks ** 0.6
    phase = rng.uniform(0, 2 * math.pi, len(ks))

    def radius(phi: np.ndarray) -> np.ndarray:
        acc = np.ones_like(phi, dtype=np.float32)
        for a, k, p in zip(amp, ks, phase):
            acc += a * np.cos(k * phi + p)
        return r * acc

    reach = r * 4.2
    sy, sx, dx, dy = _local_grid(scene.h, scene.w, cx, cy, reach)
    phi = np.arctan2(dy, dx)
    rho = np.sqrt(dx ** 2 + dy ** 2) / radius(phi)
    core = sigmoid((1 - rho) / 0.12)
    spic = np.zeros(dx.shape, np.float32)
    n = int(rng.integers(10, 24))
    a = rng.uniform(0, 2 * math.pi, n)
    base_r = radius(a) * 0.6
    tip_r = base_r + r * rng.uniform(1.3, 3.2, n)
    half_w = r * rng.uniform(0.08, 0.2, n)
    cos, sin = np.cos(a), np.sin(a)
    polys = np.stack([np.stack([base_r * cos - sin * half_w, base_r * sin + cos * half_w], 1),
                      np.stack([base_r * cos + sin * half_w, base_r * sin - cos * half_w], 1),
                      np.stack([tip_r * cos, tip_r * sin], 1)], 1)  # (n, 3, 2) triangles
    polys = np.round((polys - (sx.start - cx, sy.start - cy)) * 4).astype(np.int32)
    for poly, value in zip(polys, rng.uniform(0.5, 1.0, n)):
        cv2.fillConvexPoly(spic, poly, float(value), cv2.LINE_AA, shift=2)
    spic = cv2.GaussianBlur(spic, (0, 0), max(0.6, scene.h / 900))
    out[sy, sx] += contrast * 0.36 * (core * (0.85 + 0.15 * scene.fine[sy, sx]) + 0.4 * spic * (1 - core))
    enh[sy, sx] += 0.38 * contrast * core * (0.6 + 0.4 * sigmoid((rho - 0.6) / 0.1))
    ang = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    rr = radius(ang) * 1.08
    px, py = cx + rr * np.cos(ang), cy + rr * np.sin(ang)
    return {"shape": {"type": "polygon", "x": px.tolist(), "y": py.tolist()}, "box": _bbox(px, py, 2)}


def _draw_calcifications(scene: Scene, rng: np.random.Generator, cx: float, cy: float, r: float,
                         contrast: float, out: np.ndarray, enh: np.ndarray, benign: bool,
                         speck: float = 1.0) -> dict[str, Any]:
    """A cluster of tiny bright specks: fine, pleomorphic and lined up along a
    duct when malignant; few, coarse and round when benign.  ``speck`` > 1
    (malignant clusters below "obvious") widens each speck by that factor and
    multiplies their number by its square root."""
    unit = scene.h / 512 * speck
    if benign:
        n = int(rng.integers(2, 7))
        pts = np.array([cx, cy]) + rng.normal(0, r * 0.8, (n, 2))
        sizes = rng.uniform(1.4, 2.8, n) * unit
        bright = rng.uniform(0.45, 0.7, n)
    else:
        n = int(rng.integers(8, 26) * (1.3 - 0.4 * (contrast < 1)) * speck ** 0.5)
        seg = []
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0, 2 * math.pi)
            start = np.array([cx, cy]) + rng.normal(0, r * 0.3, 2)
            tvals = rng.uniform(-1, 1, n)[:, None] * r
            seg.append(start + tvals * np.array([math.cos(a), math.sin(a)]))
        pts = np.concatenate(seg)[rng.permutation(n * len(seg))[:n]] + rng.normal(0, r * 0.15, (n, 2))
        sizes = rng.uniform(0.7, 1.6, n) * unit
        bright = rng.uniform(0.5, 1.0, n)
    reach = float(np.abs(pts - (cx, cy)).max() + 4 * unit + 3)
    sy, sx, gx, gy = _local_grid(scene.h, scene.w, cx, cy, reach)
    hh, ww = sy.stop - sy.start, sx.stop - sx.start
    ss = 4  # draw supersampled, then average down: specks smaller than a pixel stay faint, not square
    big = np.zeros((hh * ss, ww * ss), np.float32)
    for (x, y), sz, b in zip(pts, sizes, bright):
        axes = (max(1, int(sz * ss * rng.uniform(0.6, 1.0))), max(1, int(sz * ss * rng.uniform(0.3, 1.0))))
        centre = (int((x - sx.start) * ss), int((y - sy.start) * ss))
        cv2.ellipse(big, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(b), -1)
    small = cv2.resize(big, (ww, hh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.45)
    out[sy, sx] += contrast * 1.0 * small
    if not benign:
        enh[sy, sx] += 0.22 * contrast * np.exp(-(gx ** 2 + gy ** 2) / (2 * (r * 1.2) ** 2))
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < scene.w) & (pts[:, 1] >= 0) & (pts[:, 1] < scene.h)
    pts = pts[inside] if inside.any() else pts
    box = _bbox(pts[:, 0], pts[:, 1], 3 * unit + 2)
    rad = float(max(box[2] - box[0], box[3] - box[1]) / 2)
    return {"shape": {"type": "circle", "cx": (box[0] + box[2]) / 2, "cy": (box[1] + box[3]) / 2, "r": rad},
            "box": box}


def draw_lesion(scene: Scene, lesion: Lesion, difficulty: float, out: np.ndarray,
                enh: np.ndarray) -> dict[str, Any]:
    """Draw one lesion into the density map ``out`` and the enhancement map
    ``enh`` (used by CESM subtracted images); return its shapes in canvas pixels."""
    rng = np.random.default_rng(lesion.shape_seed)
    contrast_k, size_k, speck_k = _lesion_strength(difficulty, not lesion.kind.startswith("benign"))
    contrast = contrast_k * lesion.conspicuity
    base = {"benign_mass": 0.035, "malignant_mass": 0.028, "calcifications": 0.02,
            "benign_calcifications": 0.02}[lesion.kind]
    r = scene.h * base * lesion.scale * size_k
    cx, cy = _place(scene, lesion, r * (1.6 if lesion.kind == "malignant_mass" else 1.0))
    if lesion.kind == "benign_mass":
        return _draw_benign_mass(scene, rng, cx, cy, r, contrast, out, enh)
    if lesion.kind == "malignant_mass":
        return _draw_malignant_mass(scene, rng, cx, cy, r, contrast, out, enh)
    return _draw_calcifications(scene, rng, cx, cy, r, contrast, out, enh,
                                benign=lesion.kind == "benign_calcifications", speck=speck_k)
