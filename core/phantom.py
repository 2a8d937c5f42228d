"""Synthetic mammography studies written in the real VinDr-Mammo / CDD-CESM layouts.

No mammography data ships with an installable package, so the app's demo and
the adapters' tests use this seeded phantom.  It writes the *real* on-disk
layout of a profile (DESIGN.md, "The real layouts the adapters read"), so the
adapters that read real data read it unchanged, and its class balance and
ROI-presence rates follow the paper's Tables 1-4 *by construction* (exact
allocation by rounding, then a seeded shuffle), not by luck.

Everything written is labelled synthetic (PatientName ``PHANTOM^0001``,
InstitutionName / Manufacturer ``MammoRoute synthetic phantom``, a
``phantom.json`` beside the data).  It is a fixture and a demo, never
evidence about patients.

Orientation (the usual hanging convention, as in VinDr): left-breast views
have the chest wall on the image's left edge and the nipple pointing right;
right-breast views are mirrored (chest wall on the right, nipple pointing
left).  MLO views carry the pectoral muscle in the upper chest-wall corner.
Images are portrait; ``size`` is the long (vertical) side.

Per breast, both views share the label; a lesion shows in both views of its
breast.  Label noise of the real data is kept on purpose, at the tables' rates:
malignant images without ROI (the lesion faint in a dense breast, or plainly
visible but not boxed) and benign images with one.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from core.errors import MammoError

VIEWS: tuple[str, ...] = ("RCC", "LCC", "RMLO", "LMLO")
DIFFICULTIES: dict[str, float] = {"obvious": 0.15, "moderate": 0.5, "subtle": 0.85}
DENSITIES: tuple[str, ...] = ("A", "B", "C", "D")
SYNTHETIC_NAME = "MammoRoute synthetic phantom"
MARKER_FILE = "phantom.json"
VINDR_DIRS = ("images",)
VINDR_FILES = ("breast-level_annotations.csv", "finding_annotations.csv")
CDD_DM_DIR = "Low energy images of CDD-CESM"
CDD_CM_DIR = "Subtracted images of CDD-CESM"
CDD_SHEET = "Radiology-manual-annotations.xlsx"
CDD_SEGMENTATIONS = "Radiology_hand_drawn_segmentations_v2.csv"
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_FIXED_ISO = "2020-01-01T00:00:00Z"

# Fraction of the breast area that is fibroglandular, per BI-RADS density.
_GLAND_FRACTION = {"A": 0.10, "B": 0.28, "C": 0.50, "D": 0.74}


# --------------------------------------------------------------------------- profiles

@dataclass(frozen=True)
class Profile:
    """Composition targets of one dataset, taken from the paper's tables.

    Rates are per *image* among labelled images (benign + malignant), as the
    tables count them.  ``excluded_fraction`` is the share of breasts the
    adapters drop (VinDr BI-RADS 1, CDD-CESM Normal).
    """

    name: str
    malignant_fraction: float
    roi_if_malignant: float
    roi_if_benign: float
    excluded_fraction: float
    test_fraction: float | None
    aspect: float
    density_weights: tuple[float, float, float, float]
    high_birads_benign: float
    high_birads_malignant: float
    paper_tables: dict[str, dict[str, int]] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    # Tables 1-2: 988 of 6594 malignant; ROI on 952/988 malignant, 816/5606 benign;
    # 5276/1318 train/test.  Real VinDr has ~67 % BI-RADS 1 breasts; the phantom
    # keeps one in three, so a 200-study demo still has ~90 malignant images.
    "vindr": Profile(
        name="vindr", malignant_fraction=988 / 6594, roi_if_malignant=952 / 988,
        roi_if_benign=816 / 5606, excluded_fraction=1 / 3, test_fraction=1318 / 6594,
        aspect=2800 / 3518, density_weights=(0.02, 0.12, 0.70, 0.16),
        high_birads_benign=0.17, high_birads_malignant=0.23,
        paper_tables={"malignant": {"train": 790, "test": 198, "roi": 952, "noroi": 36},
                      "benign": {"train": 4486, "test": 1120, "roi": 816, "noroi": 4790}}),
    # Tables 3-4: 331 / 331; ROI on 326/331 malignant, 322/331 benign.  The files
    # carry no split (the adapter makes the 10:1 one).  Normal: 341 of 1003 DM images.
    "cddcesm": Profile(
        name="cddcesm", malignant_fraction=0.5, roi_if_malignant=326 / 331,
        roi_if_benign=322 / 331, excluded_fraction=341 / 1003, test_fraction=None,
        aspect=0.62, density_weights=(0.10, 0.35, 0.40, 0.15),
        high_birads_benign=0.35, high_birads_malignant=0.45,
        paper_tables={"malignant": {"train": 300, "test": 31, "roi": 326, "noroi": 5},
                      "benign": {"train": 300, "test": 31, "roi": 322, "noroi": 9}}),
}


def difficulty_value(difficulty: float | str) -> float:
    """Map "obvious" / "moderate" / "subtle" or a number to 0 (obvious) .. 1 (subtle)."""
    if isinstance(difficulty, str):
        key = difficulty.strip().lower()
        if key in DIFFICULTIES:
            return DIFFICULTIES[key]
        try:
            difficulty = float(key)
        except ValueError:
            raise MammoError(f"unknown difficulty {difficulty!r}; expected one of "
                             f"{', '.join(DIFFICULTIES)} or a number in 0..1") from None
    value = float(difficulty)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise MammoError(f"difficulty {value} is outside 0..1")
    return value


# --------------------------------------------------------------------------- lesions

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


def _lesion_strength(difficulty: float) -> tuple[float, float]:
    """Contrast and size multipliers: an obvious lesion is big and bright."""
    return 1.6 - 1.2 * difficulty, 1.3 - 0.6 * difficulty


# --------------------------------------------------------------------------- noise fields

def _power_noise(rng: np.random.Generator, h: int, w: int, beta: float, step: int = 1) -> np.ndarray:
    """Zero-mean, unit-variance noise with a 1/f**beta power spectrum.

    Mammographic parenchyma has a power-law spectrum with beta near 3, which is
    why this, not white noise, makes tissue look like tissue.  ``step`` > 1
    synthesises on a coarser grid and enlarges: steep spectra hold almost no
    fine detail, so this costs nothing visible and saves most of the time.
    """
    hs, ws = max(8, -(-h // step)), max(8, -(-w // step))
    fy = np.fft.fftfreq(hs)[:, None]
    fx = np.fft.rfftfreq(ws)[None, :]
    f = np.sqrt(fx * fx + fy * fy) / step
    f[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.standard_normal((hs, ws), dtype=np.float32))
    field_ = np.fft.irfft2(spectrum / f ** (beta / 2.0), s=(hs, ws)).astype(np.float32)
    if step > 1:
        field_ = cv2.resize(field_, (w, h), interpolation=cv2.INTER_CUBIC)
    field_ -= field_.mean()
    return field_ / (field_.std() + 1e-8)


def _radial_streaks(rng: np.random.Generator, h: int, w: int, centre: tuple[float, float]) -> np.ndarray:
    """Noise stretched along rays through the nipple: ducts and Cooper's ligaments
    converge on the nipple, and this is what makes the texture read as breast."""
    cx, cy = centre
    max_r = float(math.hypot(max(cx, w - cx), max(cy, h - cy))) + 1
    n_ang, n_rad = int(np.clip(2 * h, 90, 540)), int(np.clip(h // 4, 16, 128))
    polar = _wrap_blur(rng.standard_normal((n_ang, n_rad), dtype=np.float32), n_rad / 16, 1.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    map_a = (np.arctan2(dy, dx) % np.float32(2 * math.pi)) * np.float32(n_ang / (2 * math.pi))
    map_r = np.sqrt(dx * dx + dy * dy) * np.float32(n_rad / max_r)
    cart = cv2.remap(polar, map_r, map_a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    cart -= cart.mean()
    return cart / (cart.std() + 1e-8)


def _wrap_blur(polar: np.ndarray, sig_r: float, sig_a: float) -> np.ndarray:
    """Gaussian blur that wraps around in angle (rows) and reflects in radius."""
    pad = int(4 * sig_a) + 1
    padded = np.concatenate([polar[-pad:], polar, polar[:pad]])
    return cv2.GaussianBlur(padded, (0, 0), sigmaX=sig_r, sigmaY=sig_a)[pad:-pad]


def _smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


# --------------------------------------------------------------------------- breast scene

@dataclass
class _Scene:
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
    is_mlo: bool


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
    return _sigmoid((1.0 - edge) * min(pw, ph) / 3.0).astype(np.float32)


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


def _scene(rng: np.random.Generator, view: str, density: str, h: int, w: int) -> _Scene:
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
    coarse = _power_noise(rng, hs, ws, 3.2, step=2)
    fine = _power_noise(rng, h, w, 2.0, step=2)
    streaks = _radial_streaks(rng, hs, ws, (nipple[0] / 2, nipple[1] / 2))
    from_nipple = np.hypot(xx - nipple[0], yy - nipple[1]) / max(nipple[0], 1.0)
    # zero crossings of the ray-stretched field: thin strands converging on the nipple
    strands = np.exp(-(streaks / 0.22) ** 2) * _smoothstep(from_nipple, 0.05, 0.3)
    axial = 1 - xx / max(nipple[0], 1.0)  # 0 at nipple, 1 at chest wall
    across = (yy - mid[None, ::2]) / half[None, ::2]
    prior = np.exp(-(across / 0.6) ** 2) * _smoothstep(axial, 0.0, 0.12) * (1 - 0.5 * _smoothstep(axial, 0.7, 1.0))
    pect = _pectoral(rng, h, w, xx, yy) * inside_s if mlo else np.zeros((hs, ws), np.float32)
    raw = 1.0 * prior + 0.75 * coarse + 0.12 * streaks + 0.1 * fine[::2, ::2] - 2.0 * pect
    frac = float(np.clip(_GLAND_FRACTION[density] + rng.uniform(-0.04, 0.04), 0.03, 0.95))
    inside = raw[inside_s]
    q = float(np.quantile(inside, 1 - frac)) if inside.size else 0.0
    gland = _sigmoid((raw - q) / (0.3 * float(inside.std() if inside.size else 1.0)))

    def up(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) * mask

    return _Scene(h, w, mask, dist, thickness.astype(np.float32), up(gland), up(pect), fine,
                  up(coarse), up(strands), _vessels(rng, h, w, mask, outline), nipple, mid, half,
                  flip=view.startswith("R"), is_mlo=mlo)


# --------------------------------------------------------------------------- lesion drawing

def _place(scene: _Scene, lesion: Lesion, radius: float) -> tuple[float, float]:
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


def _draw_benign_mass(scene: _Scene, rng: np.random.Generator, cx: float, cy: float, r: float,
                      contrast: float, out: np.ndarray, enh: np.ndarray) -> dict[str, Any]:
    """Round / oval, circumscribed, smooth: what BI-RADS calls probably benign."""
    rx, ry, theta = r, r * rng.uniform(0.65, 1.0), rng.uniform(0, math.pi)
    sy, sx, dx, dy = _local_grid(scene.h, scene.w, cx, cy, r * 1.6)
    c, s = math.cos(theta), math.sin(theta)
    rho = np.sqrt(((dx * c + dy * s) / rx) ** 2 + ((-dx * s + dy * c) / ry) ** 2)
    body = _sigmoid((1 - rho) / 0.05) * (0.7 + 0.3 * np.sqrt(np.clip(1 - rho ** 2, 0, 1)))
    halo = -0.25 * np.exp(-((rho - 1.1) / 0.06) ** 2) if rng.random() < 0.4 else 0.0
    out[sy, sx] += contrast * 0.24 * (body + halo)
    enh[sy, sx] += 0.12 * contrast * body
    ex, ey = math.hypot(rx * c, ry * s), math.hypot(rx * s, ry * c)
    return {"shape": {"type": "ellipse", "cx": cx, "cy": cy, "rx": rx, "ry": ry, "theta": theta},
            "box": (cx - ex - 2, cy - ey - 2, cx + ex + 2, cy + ey + 2)}


def _draw_malignant_mass(scene: _Scene, rng: np.random.Generator, cx: float, cy: float, r: float,
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
    core = _sigmoid((1 - rho) / 0.12)
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
    enh[sy, sx] += 0.38 * contrast * core * (0.6 + 0.4 * _sigmoid((rho - 0.6) / 0.1))
    ang = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    rr = radius(ang) * 1.08
    px, py = cx + rr * np.cos(ang), cy + rr * np.sin(ang)
    return {"shape": {"type": "polygon", "x": px.tolist(), "y": py.tolist()}, "box": _bbox(px, py, 2)}


def _draw_calcifications(scene: _Scene, rng: np.random.Generator, cx: float, cy: float, r: float,
                         contrast: float, out: np.ndarray, enh: np.ndarray, benign: bool) -> dict[str, Any]:
    """A cluster of tiny bright specks: fine, pleomorphic and lined up along a
    duct when malignant; few, coarse and round when benign."""
    unit = scene.h / 512
    if benign:
        n = int(rng.integers(2, 7))
        pts = np.array([cx, cy]) + rng.normal(0, r * 0.8, (n, 2))
        sizes = rng.uniform(1.4, 2.8, n) * unit
        bright = rng.uniform(0.45, 0.7, n)
    else:
        n = int(rng.integers(8, 26) * (1.3 - 0.4 * (contrast < 1)))
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


def _draw_lesion(scene: _Scene, lesion: Lesion, difficulty: float, out: np.ndarray,
                 enh: np.ndarray) -> dict[str, Any]:
    """Draw one lesion into the density map ``out`` and the enhancement map
    ``enh`` (used by CESM subtracted images); return its shapes in canvas pixels."""
    rng = np.random.default_rng(lesion.shape_seed)
    contrast_k, size_k = _lesion_strength(difficulty)
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
                                benign=lesion.kind == "benign_calcifications")


# --------------------------------------------------------------------------- images

def _flip_shape(item: dict[str, Any], w: int) -> dict[str, Any]:
    """Mirror a drawn lesion's shapes for a right-breast view."""
    s = dict(item["shape"])
    if s["type"] == "polygon":
        s["x"] = [w - 1 - x for x in s["x"]]
    else:
        s["cx"] = w - 1 - s["cx"]
        if "theta" in s:
            s["theta"] = math.pi - s["theta"]
    x0, y0, x1, y1 = item["box"]
    return {**item, "shape": s, "box": (w - 1 - x1, y0, w - 1 - x0, y1)}


def _compose_dm(scene: _Scene, lesion_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Density map → display intensity: thickness fall-off, skin line, soft
    saturation (why lesions in dense tissue lose contrast), blur and noise."""
    fat = 0.20 + 0.025 * scene.coarse + 0.02 * scene.fine + 0.045 * scene.strands
    tissue = fat + 0.34 * scene.gland * (1 + 0.1 * scene.fine) + 0.07 * scene.vessels
    muscle = 0.52 + 0.04 * scene.coarse + 0.02 * scene.fine + 0.08 * scene.gland
    tissue = tissue * (1 - scene.pectoral) + scene.pectoral * muscle
    dens = scene.thickness * tissue + lesion_map + 0.06 * np.exp(-scene.dist / max(1.0, scene.h / 500))
    img = (1 - np.exp(-1.5 * dens)) / (1 - math.exp(-1.5))
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), max(0.5, scene.h / 1000))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.007)
    img = np.where(scene.mask, np.clip(img, 0.02, 1.0), 0.0).astype(np.float32)
    return img


def _compose_cesm(scene: _Scene, enh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recombined (subtracted) contrast image: grey, flat breast, bright vessels,
    background parenchymal enhancement, and the lesion's enhancement."""
    bpe = 0.06 * scene.gland * (0.6 + 0.4 * scene.fine)
    body = 0.40 + 0.03 * scene.coarse + bpe + 0.20 * scene.vessels + enh
    body = body + 0.05 * np.exp(-scene.dist / max(1.0, scene.h / 400)) - 0.08 * scene.pectoral
    img = cv2.GaussianBlur(body.astype(np.float32), (0, 0), max(0.6, scene.h / 800))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.012)
    return np.where(scene.mask, np.clip(img, 0.05, 1.0), 0.07).astype(np.float32)


def _render(rng: np.random.Generator, view: str, density: str, lesions: Sequence[Lesion],
            size: int, difficulty: float, aspect: float, subtracted: bool
            ) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
    h = int(size)
    w = max(8, int(round(size * aspect / 2)) * 2)
    scene = _scene(rng, view, density, h, w)
    lesion_map = np.zeros((h, w), np.float32)
    enh = np.zeros((h, w), np.float32)
    drawn = []
    for lesion in lesions:
        item = _draw_lesion(scene, lesion, difficulty, lesion_map, enh)
        drawn.append({**item, "kind": lesion.kind, "category": lesion.category})
    lesion_map *= scene.mask
    dm = _compose_dm(scene, lesion_map, rng)
    cm = _compose_cesm(scene, enh, rng) if subtracted else None
    if scene.flip:
        dm = dm[:, ::-1].copy()
        cm = cm[:, ::-1].copy() if cm is not None else None
        drawn = [_flip_shape(d, w) for d in drawn]
    return dm, cm, drawn


def render_view(rng: np.random.Generator, view: str, density: str = "B",
                lesions: Sequence[Lesion] = (), size: int = 512,
                difficulty: float | str = "moderate", aspect: float = 0.8
                ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One synthetic full-field mammogram, for tests and benchmarks.

    Returns a float32 ``(size, ≈size*aspect)`` image in 0..1 (0 = air, exactly;
    brighter = denser, as displayed) and one dict per lesion with ``kind``,
    ``category`` (VinDr finding), ``box`` ``(xmin, ymin, xmax, ymax)`` and
    ``shape`` (a :mod:`core.roi` shape: ellipse, polygon or circle), in pixels.
    """
    if view not in VIEWS:
        raise MammoError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    if density not in DENSITIES:
        raise MammoError(f"unknown density {density!r}; expected one of {', '.join(DENSITIES)}")
    dm, _, drawn = _render(rng, view, density, lesions, size, difficulty_value(difficulty),
                           aspect, subtracted=False)
    return dm, drawn


# --------------------------------------------------------------------------- composition plan

@dataclass(frozen=True)
class BreastPlan:
    """What one breast is: its label, which views carry an ROI, its lesions."""

    label: str  # normal | benign | malignant
    birads: str  # VinDr style number, or CDD-CESM "4$2"-style text
    roi_views: frozenset[str]
    lesions: tuple[Lesion, ...]
    extra_category: bool = False


def _alloc(total: int, fraction: float) -> int:
    return int(round(total * fraction))


def _roi_patterns(images: int, with_roi: int, both_share: float) -> list[int]:
    """Split ``images`` (2 per breast) into breasts with 2, 1 or 0 annotated
    views so that exactly ``with_roi`` images carry an ROI."""
    breasts = images // 2
    with_roi = min(with_roi, images)
    if with_roi > breasts:  # more than one per breast: at least this many pairs
        both = with_roi - breasts
    else:
        both = min(with_roi // 2, int(round(with_roi * both_share / 2)))
    single = with_roi - 2 * both
    return [2] * both + [1] * single + [0] * (breasts - both - single)


def _malignant_patterns(images: int, with_roi: int) -> list[int]:
    """Missing malignant ROIs: a third hidden in both views (dense breast), the
    rest missing in one view only."""
    breasts = images // 2
    missing = images - with_roi
    none = max(missing - breasts, missing // 3)
    single = missing - 2 * none
    both = breasts - none - single
    return [2] * both + [1] * single + [0] * none


def _malignant_lesions(rng: np.random.Generator, annotated: int) -> tuple[Lesion, ...]:
    """A spiculated mass, a calcification cluster or both, close together;
    faint when no view of the breast is annotated (hidden in dense tissue)."""
    kind = rng.choice(["mass", "calc", "both"], p=[0.55, 0.25, 0.20])
    hidden = 0.4 if annotated == 0 else 1.0
    depth, offset = rng.uniform(0.3, 0.8), rng.uniform(-0.8, 0.8)
    made = []
    if kind in ("mass", "both"):
        made.append(Lesion("malignant_mass", depth, offset, rng.uniform(0.75, 1.35),
                           int(rng.integers(2 ** 31)), hidden))
    if kind in ("calc", "both"):
        shift = rng.uniform(-0.15, 0.15) if kind == "both" else 0.0
        made.append(Lesion("calcifications", float(np.clip(depth + shift, 0.2, 0.9)),
                           float(np.clip(offset + shift, -0.9, 0.9)), rng.uniform(0.8, 1.3),
                           int(rng.integers(2 ** 31)), hidden))
    return tuple(made)


def _benign_lesions(rng: np.random.Generator, annotated: int) -> tuple[Lesion, ...]:
    """A circumscribed mass (or coarse calcifications) where a box is drawn;
    where none is, usually nothing, sometimes unboxed coarse calcifications."""
    if annotated == 0 and rng.random() > 0.3:
        return ()  # most benign breasts without a box show nothing worth boxing
    kind = "benign_mass" if rng.random() < 0.85 else "benign_calcifications"
    if annotated == 0:
        kind, scale = "benign_calcifications", rng.uniform(0.6, 1.0)
    else:
        scale = rng.uniform(0.7, 1.4)
    return (Lesion(kind, rng.uniform(0.25, 0.85), rng.uniform(-0.8, 0.8), scale,
                   int(rng.integers(2 ** 31))),)


def _birads(rng: np.random.Generator, profile: Profile, label: str) -> str:
    """Breast BI-RADS: 1 normal, 2-3 benign, 4-5 malignant (the paper's mapping)."""
    if label == "normal":
        return "1"
    if label == "benign":
        return "3" if rng.random() < profile.high_birads_benign else "2"
    return "5" if rng.random() < profile.high_birads_malignant else "4"


def plan_breasts(profile: Profile, studies: int, rng: np.random.Generator) -> list[BreastPlan]:
    """Allocate labels and ROI patterns to ``2 * studies`` breasts exactly, then
    shuffle them: the composition is the tables' by construction."""
    breasts = 2 * studies
    excluded = _alloc(breasts, profile.excluded_fraction)
    labelled = breasts - excluded
    malignant = _alloc(labelled, profile.malignant_fraction)
    benign = labelled - malignant
    m_pat = _malignant_patterns(2 * malignant, _alloc(2 * malignant, profile.roi_if_malignant))
    b_pat = _roi_patterns(2 * benign, _alloc(2 * benign, profile.roi_if_benign), 0.85)
    plans: list[BreastPlan] = []
    for n in m_pat:
        views = _pattern_views(rng, n)
        lesions = _malignant_lesions(rng, n)
        plans.append(BreastPlan("malignant", _birads(rng, profile, "malignant"), views, lesions,
                                extra_category=bool(rng.random() < 0.1)))
    for n in b_pat:
        plans.append(BreastPlan("benign", _birads(rng, profile, "benign"), _pattern_views(rng, n),
                                _benign_lesions(rng, n)))
    plans += [BreastPlan("normal", "1", frozenset(), ()) for _ in range(excluded)]
    edge_slots = [i for i, p in enumerate(plans) if p.roi_views and p.lesions][:: 40]
    for i in edge_slots:  # a few lesions against the chest wall: boxes slightly off-image
        p = plans[i]
        plans[i] = replace(p, lesions=(replace(p.lesions[0], at_edge=True),) + p.lesions[1:])
    return [plans[i] for i in rng.permutation(len(plans))]


def _pattern_views(rng: np.random.Generator, annotated: int) -> frozenset[str]:
    """Which views of a breast carry its ROI, given how many do."""
    if annotated == 2:
        return frozenset({"CC", "MLO"})
    if annotated == 1:
        return frozenset({"CC"}) if rng.random() < 0.5 else frozenset({"MLO"})
    return frozenset()


def _view_lesions(plan: BreastPlan, position: str, rng: np.random.Generator) -> tuple[Lesion, ...]:
    """The breast's lesions as one projection shows them: the MLO sees another
    offset.  A malignant lesion unannotated in one view is, for half of the
    breasts, drawn faint there (hidden by overlying tissue) and for the other
    half drawn plainly (seen but not boxed), the two ways ROIs go missing."""
    out = []
    for lesion in plan.lesions:
        offset = lesion.offset
        if position == "MLO":
            offset = float(np.clip(-0.6 * lesion.offset + rng.uniform(-0.3, 0.3), -0.9, 0.9))
        consp = lesion.conspicuity
        if plan.label == "malignant" and plan.roi_views and position not in plan.roi_views:
            consp = 0.45 if lesion.shape_seed % 2 else 1.0
        out.append(replace(lesion, offset=offset, conspicuity=consp))
    return tuple(out)


def _split_studies(keys: list[tuple], fraction: float | None, rng: np.random.Generator) -> list[str]:
    """Per-study train/test split, stratified by construction: sort studies by
    their composition, then send every k-th to test from a seeded start."""
    if fraction is None:
        return [""] * len(keys)
    order = sorted(range(len(keys)), key=lambda i: (keys[i], rng.random()))
    start = rng.random()
    split = [""] * len(keys)
    for rank, i in enumerate(order):
        crosses = math.floor((rank + 1) * fraction + start) > math.floor(rank * fraction + start)
        split[i] = "test" if crosses else "train"
    return split


# --------------------------------------------------------------------------- summary

@dataclass
class PhantomSummary:
    """What was written, image by image, and its composition.

    ``records`` has one entry per image an adapter labels or excludes (VinDr
    DICOMs; CDD-CESM low-energy DM images), in manifest vocabulary: ``label``
    benign | malignant | normal (normal = excluded by the adapters),
    ``split`` train | test | "" (CDD-CESM: the adapter splits).
    """

    profile: str
    out: str
    studies: int
    size: int
    seed: int
    difficulty: float
    files: int
    records: list[dict[str, Any]]

    def _count(self, key: str) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for r in self.records:
            if r["label"] in ("benign", "malignant"):
                row = table.setdefault(_key_of(r, key), {"benign": 0, "malignant": 0})
                row[r["label"]] += 1
        return dict(sorted(table.items()))

    @property
    def by_split(self) -> dict[str, dict[str, int]]:
        """Labelled images per split × label (Tables 1 and 3); split "" = none written."""
        return self._count("split")

    @property
    def by_roi(self) -> dict[str, dict[str, int]]:
        """Labelled images per ROI presence × label (Tables 2 and 4)."""
        return self._count("roi")

    @property
    def by_cell(self) -> dict[str, dict[str, int]]:
        """Labelled images per grid cell (``roi-LMLO`` …) × label."""
        return self._count("cell")

    @property
    def excluded(self) -> int:
        return sum(r["label"] == "normal" for r in self.records)

    def rates(self) -> dict[str, float]:
        """The rates the paper's tables imply, as written."""
        lab = [r for r in self.records if r["label"] != "normal"]
        mal = [r for r in lab if r["label"] == "malignant"]
        ben = [r for r in lab if r["label"] == "benign"]
        test = [r for r in lab if r["split"] == "test"]
        return {
            "malignant_fraction": len(mal) / max(1, len(lab)),
            "roi_if_malignant": sum(r["roi"] for r in mal) / max(1, len(mal)),
            "roi_if_benign": sum(r["roi"] for r in ben) / max(1, len(ben)),
            "test_fraction": len(test) / max(1, len(lab)),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(by_split=self.by_split, by_roi=self.by_roi, by_cell=self.by_cell,
                 excluded=self.excluded, rates=self.rates())
        return d

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [f"synthetic phantom ({self.profile}): {self.studies} studies, {self.files} files, "
                 f"{self.size}px, seed {self.seed}, difficulty {self.difficulty:g} -> {self.out}",
                 f"  labelled images: {sum(r['label'] != 'normal' for r in self.records)}, "
                 f"excluded (BI-RADS 1 / normal): {self.excluded}"]
        for name, table in (("split", self.by_split), ("roi", self.by_roi)):
            for k, row in table.items():
                lines.append(f"  {name}={k or '(none)'}: benign {row['benign']}, malignant {row['malignant']}")
        lines.append("  rates: " + ", ".join(f"{k} {v:.3f}" for k, v in self.rates().items()))
        return "\n".join(lines)


def _key_of(record: dict[str, Any], key: str) -> str:
    """Grouping key of a summary record: its split, ROI presence or cell name."""
    if key == "roi":
        return "roi" if record["roi"] else "noroi"
    if key == "cell":
        return f"{'roi' if record['roi'] else 'noroi'}-{record['view_name']}"
    return str(record[key])


# --------------------------------------------------------------------------- DICOM encoding

@dataclass(frozen=True)
class _Encoding:
    """How one DICOM stores its pixels: the variety real archives show."""

    mono1: bool
    bits: int
    slope: float
    intercept: float
    padding: bool
    windows: int
    sigmoid: bool
    voi_lut: bool


def _encodings(rng: np.random.Generator, n: int) -> list[_Encoding]:
    """Encodings for ``n`` images; every third is MONOCHROME1, so any few
    consecutive images cover both photometric interpretations."""
    out = []
    for k in range(n):
        mono1 = k % 3 == 2
        bits = int(rng.choice([12, 14, 16], p=[0.45, 0.35, 0.20]))
        rescale = rng.random() < 0.3
        slope, intercept = (float(rng.choice([0.5, 1.0, 2.0])), float(rng.choice([0, -100, 50]))) if rescale else (1.0, 0.0)
        out.append(_Encoding(mono1, bits, slope, intercept, rng.random() < 0.3,
                             int(rng.choice([1, 2, 3], p=[0.6, 0.15, 0.25])), rng.random() < 0.15,
                             rng.random() < 0.08))
    return out


def _stored_pixels(img: np.ndarray, enc: _Encoding, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Display intensity 0..1 → stored uint16 and the tags that undo it.

    Windows are stated in modality units (after Rescale), and for MONOCHROME1
    the stored values run the other way, as in real files.
    """
    maxv = (1 << enc.bits) - 1
    lo, hi = maxv * rng.uniform(0.03, 0.12), maxv * rng.uniform(0.80, 0.97)
    disp = lo + img * (hi - lo)
    stored = maxv - disp if enc.mono1 else disp
    stored = np.clip(np.round(stored), 0, maxv).astype(np.uint16)
    tags: dict[str, Any] = {}
    air = img <= 0
    if enc.padding:
        pad = maxv if enc.mono1 else 0
        stored[air] = pad
        tags["PixelPaddingValue"] = pad
    breast_lo, breast_hi = lo + 0.15 * (hi - lo), hi
    if enc.mono1:
        breast_lo, breast_hi = maxv - breast_hi, maxv - breast_lo
    mod_lo, mod_hi = breast_lo * enc.slope + enc.intercept, breast_hi * enc.slope + enc.intercept
    centre, width = (mod_lo + mod_hi) / 2, abs(mod_hi - mod_lo)
    harder = centre + (-0.1 if enc.mono1 else 0.1) * width  # toward the dense end of the range
    windows = [(centre, width, "NORMAL"), (harder, width * 0.7, "HARDER"), (centre, width * 1.4, "SOFTER")]
    centres, widths, names = (list(col) for col in zip(*windows[:enc.windows]))
    tags["WindowCenter"] = [round(c, 1) for c in centres] if len(centres) > 1 else round(centre, 1)
    tags["WindowWidth"] = [round(x, 1) for x in widths] if len(widths) > 1 else round(width, 1)
    tags["WindowCenterWidthExplanation"] = names if len(names) > 1 else names[0]
    if enc.sigmoid:
        tags["VOILUTFunction"] = "SIGMOID"
    if enc.slope != 1.0 or enc.intercept != 0.0 or enc.bits == 16:
        tags["RescaleSlope"], tags["RescaleIntercept"], tags["RescaleType"] = enc.slope, enc.intercept, "US"
    return stored, tags


def _voi_lut_item(centre: float, width: float) -> Any:
    """A VOI LUT Sequence item equivalent to the NORMAL window (12-bit output),
    indexed by modality values as the standard says."""
    from pydicom.dataset import Dataset

    first = int(max(0, centre - width / 2))
    n = int(min(65535, max(2, width)))
    x = np.arange(n) + first
    y = np.clip((x - (centre - width / 2)) / width, 0, 1) * 4095
    item = Dataset()
    item.LUTDescriptor = [n, first, 12]
    item.LUTExplanation = "SYNTHETIC LINEAR"
    item.LUTData = np.round(y).astype(np.uint16).tobytes()
    item["LUTData"].VR = "OW"
    return item


def _uid(*parts: Any) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["mammoroute-phantom", *map(str, parts)]))


def _hexid(*parts: Any) -> str:
    """VinDr-style 32-hex identifiers, deterministic in the seed."""
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()


def _write_dicom(path: Path, img: np.ndarray, enc: _Encoding, meta: dict[str, Any],
                 rng: np.random.Generator) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    sop_class = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
    stored, tags = _stored_pixels(img, enc, rng)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = meta["sop_uid"]
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = "MAMMOROUTE_PH"
    ds = Dataset()
    ds.file_meta = fm
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta["sop_uid"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = meta["date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = ds.InstitutionName = SYNTHETIC_NAME
    ds.ManufacturerModelName = "phantom"
    ds.StudyDescription = "SYNTHETIC PHANTOM MAMMOGRAM"
    ds.SeriesDescription = f"{meta['laterality']} {meta['position']} (synthetic)"
    ds.PatientName = meta["patient_name"]
    ds.PatientID = meta["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.PatientAge = f"{meta['age']:03d}Y"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = meta["study_uid"], meta["series_uid"]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", meta["series_number"], 1
    ds.PatientOrientation = meta["orientation"]
    ds.ImageLaterality = ds.Laterality = meta["laterality"]
    ds.ViewPosition = meta["position"]
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if enc.mono1 else "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, enc.bits, enc.bits - 1, 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if enc.mono1 else -1
    for key, value in tags.items():
        setattr(ds, key, value)
    centre = tags["WindowCenter"][0] if isinstance(tags["WindowCenter"], list) else tags["WindowCenter"]
    width = tags["WindowWidth"][0] if isinstance(tags["WindowWidth"], list) else tags["WindowWidth"]
    if enc.voi_lut and "RescaleSlope" not in tags and 2 <= width <= 65535 and centre - width / 2 >= 0:
        ds.VOILUTSequence = [_voi_lut_item(centre, width)]
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    ds.save_as(path, enforce_file_format=True)


_ORIENTATION = {"LCC": ["A", "R"], "RCC": ["P", "L"], "LMLO": ["A", "FR"], "RMLO": ["P", "FL"]}


# --------------------------------------------------------------------------- workers

def _vindr_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Render and write one VinDr DICOM; runs in a pool, seeded by its task."""
    rng = np.random.default_rng(task["seed"])
    dm, _, drawn = _render(rng, task["view"], task["density"], task["lesions"], task["size"],
                           task["difficulty"], task["aspect"], subtracted=False)
    path = Path(task["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_dicom(path, dm, task["encoding"], task["meta"], rng)
    return {"height": dm.shape[0], "width": dm.shape[1], "drawn": drawn}


def _jpeg_bytes(img: np.ndarray, marker: str, quality: int) -> bytes:
    """8-bit grey JPEG with the laterality marker burned in, as scanners do."""
    u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    h, w = u8.shape
    scale = h / 900
    left = marker.startswith("R")  # marker on the side away from the chest wall
    (tw, th), _ = cv2.getTextSize(marker, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))
    x = int(0.03 * w) if left else int(w - tw - 0.03 * w)
    cv2.putText(u8, marker, (x, int(0.03 * h + th)), cv2.FONT_HERSHEY_SIMPLEX, scale, 235,
                max(1, int(2 * scale)), cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MammoError("JPEG encoding failed")
    return buf.tobytes()


def _cdd_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Render one CDD-CESM view and write its low-energy and subtracted JPEGs."""
    rng = np.random.default_rng(task["seed"])
    dm, cm, drawn = _render(rng, task["view"], task["density"], task["lesions"], task["size"],
                            task["difficulty"], task["aspect"], subtracted=True)
    sizes = {}
    for key, img in (("dm", dm), ("cm", cm)):
        data = _jpeg_bytes(img, task["view"], 92)
        Path(task[key]).parent.mkdir(parents=True, exist_ok=True)
        Path(task[key]).write_bytes(data)
        sizes[key] = len(data)
    return {"height": dm.shape[0], "width": dm.shape[1], "drawn": drawn, "sizes": sizes}


def _run_tasks(func: Callable[[dict[str, Any]], dict[str, Any]], tasks: list[dict[str, Any]],
               workers: int | None) -> list[dict[str, Any]]:
    """Run tasks in order, in a process pool when it pays; results are the same
    either way because every task carries its own seed."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(tasks) >= 48 else 1
    if workers <= 1:
        return [func(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, tasks, chunksize=max(1, len(tasks) // (workers * 8))))


# --------------------------------------------------------------------------- VinDr layout

_BREAST_COLS = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                "breast_birads", "breast_density"]


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def _write_vindr(root: Path, profile: Profile, studies: int, size: int, seed: int,
                 difficulty: float, workers: int | None) -> tuple[list[dict], int]:
    rng = np.random.default_rng([seed, 1])
    plans = plan_breasts(profile, studies, rng)
    densities = _study_densities(rng, profile, plans, studies)
    keys = [_strat_key(plans[2 * i], plans[2 * i + 1]) for i in range(studies)]
    splits = _split_studies(keys, profile.test_fraction, rng)
    encodings = _encodings(rng, 4 * studies)
    tasks, rows = [], []
    for i in range(studies):
        study_id = _hexid(seed, "study", i)
        for j, lat in enumerate("RL"):
            plan = plans[2 * i + j]
            for position in ("CC", "MLO"):
                k = len(tasks)
                view = lat + position
                image_id = _hexid(seed, "image", i, view)
                meta = {"sop_uid": _uid(seed, i, view, "sop"), "study_uid": _uid(seed, i, "study"),
                        "series_uid": _uid(seed, i, view, "series"), "date": f"2020{1 + i % 12:02d}{1 + i % 28:02d}",
                        "patient_name": f"PHANTOM^{i + 1:04d}", "patient_id": f"PHANTOM-{seed}-{i + 1:04d}",
                        "age": 40 + (i * 7) % 35, "laterality": lat, "position": position,
                        "series_number": k % 4 + 1, "orientation": _ORIENTATION[view]}
                tasks.append({"seed": [seed, 2, i, j, int(position == "MLO")], "view": view,
                              "density": densities[i], "lesions": _view_lesions(plan, position, rng),
                              "size": size, "difficulty": difficulty, "aspect": profile.aspect,
                              "encoding": encodings[k], "meta": meta,
                              "path": str(root / "images" / study_id / f"{image_id}.dicom")})
                rows.append({"study_id": study_id, "series_id": _hexid(seed, "series", i, view),
                             "image_id": image_id, "laterality": lat, "view_position": position,
                             "plan": plan, "density": densities[i], "split": splits[i], "view": view})
    results = _run_tasks(_vindr_worker, tasks, workers)
    breast_rows, finding_rows, records = [], [], []
    for k, (row, res) in enumerate(zip(rows, results)):
        plan: BreastPlan = row["plan"]
        base = [row["study_id"], row["series_id"], row["image_id"], row["laterality"], row["view_position"],
                res["height"], res["width"], f"BI-RADS {plan.birads}", f"DENSITY {row['density']}"]
        split = "training" if row["split"] == "train" else "test"
        breast_rows.append(base + [split])
        annotated = row["view_position"] in plan.roi_views
        findings = res["drawn"] if annotated else []
        for f_i, item in enumerate(findings):
            cats = [item["category"]]
            if plan.extra_category and f_i == 0:
                cats = ["Nipple Retraction"] + cats
            fb = "" if (k + f_i) % 7 == 3 else f"BI-RADS {_finding_birads(plan, item)}"
            finding_rows.append(base + [repr(cats), fb] + [_fmt(v) for v in item["box"]] + [split])
        if not findings:
            finding_rows.append(base + ["['No Finding']", "", "", "", "", "", split])
        records.append({"image_path": f"images/{row['study_id']}/{row['image_id']}.dicom",
                        "patient_id": row["study_id"], "study_id": row["study_id"],
                        "laterality": row["laterality"], "view": row["view_position"], "view_name": row["view"],
                        "label": plan.label, "roi": bool(findings), "split": row["split"],
                        "photometric": "MONOCHROME1" if tasks[k]["encoding"].mono1 else "MONOCHROME2"})
    _write_csv(root / "breast-level_annotations.csv", _BREAST_COLS + ["split"], breast_rows)
    _write_csv(root / "finding_annotations.csv",
               _BREAST_COLS + ["finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax", "split"],
               finding_rows)
    return records, len(tasks) + 2


def _finding_birads(plan: BreastPlan, item: dict[str, Any]) -> str:
    """A finding's own category: the breast's for malignant ones; benign
    masses are usually 3 (probably benign), benign calcifications 2."""
    if plan.label == "malignant":
        return plan.birads
    return "3" if item["kind"].endswith("mass") else "2"


def _study_densities(rng: np.random.Generator, profile: Profile, plans: list[BreastPlan],
                     studies: int) -> list[str]:
    """A density per study; a malignancy with no ROI anywhere sits in a dense breast."""
    out = []
    for i in range(studies):
        d = str(rng.choice(DENSITIES, p=profile.density_weights))
        if any(p.label == "malignant" and not p.roi_views for p in plans[2 * i: 2 * i + 2]):
            d = "D" if rng.random() < 0.7 else "C"
        out.append(d)
    return out


def _strat_key(a: BreastPlan, b: BreastPlan) -> tuple[int, int, int]:
    labels = (a.label, b.label)
    return (labels.count("malignant"), labels.count("benign"), len(a.roi_views) + len(b.roi_views))


def _write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# --------------------------------------------------------------------------- CDD-CESM layout

_CDD_COLUMNS = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS",
                "Findings", "View", "Tags", "Machine", "Pathology Classification/ Follow up"]
_VIA_COLUMNS = ["#filename", "file_size", "file_attributes", "region_count", "region_id",
                "region_shape_attributes", "region_attributes"]


def _cdd_birads(plan: BreastPlan, k: int) -> str:
    """BIRADS text; a few breasts list a second finding's category after "$"."""
    if plan.label != "normal" and k % 9 == 4:
        return f"{plan.birads}$2"
    return plan.birads


def _cdd_findings(plan: BreastPlan) -> tuple[str, str]:
    if not plan.lesions:
        return ("No findings", "") if plan.label == "normal" else ("Benign features", "scattered")
    kinds = {l.kind for l in plan.lesions}
    words, tags = [], []
    if "malignant_mass" in kinds:
        words.append("irregular spiculated mass"); tags += ["irregular", "spiculated"]
    if "calcifications" in kinds:
        words.append("pleomorphic microcalcifications"); tags += ["clustered", "pleomorphic"]
    if "benign_mass" in kinds:
        words.append("oval circumscribed mass"); tags += ["oval", "circumscribed"]
    if "benign_calcifications" in kinds:
        words.append("coarse calcifications"); tags += ["coarse"]
    return ", ".join(words), ", ".join(tags)


def _via_shape(item: dict[str, Any], k: int) -> dict[str, Any]:
    s = item["shape"]
    r2 = lambda v: int(round(v))  # noqa: E731 - VIA stores whole pixels
    if s["type"] == "polygon":
        return {"name": "polygon", "all_points_x": [r2(v) for v in s["x"]], "all_points_y": [r2(v) for v in s["y"]]}
    if s["type"] == "ellipse" and k % 3:
        return {"name": "ellipse", "cx": r2(s["cx"]), "cy": r2(s["cy"]), "rx": round(s["rx"], 1),
                "ry": round(s["ry"], 1), "theta": 0}
    if s["type"] == "ellipse":
        return {"name": "circle", "cx": r2(s["cx"]), "cy": r2(s["cy"]), "r": round(max(s["rx"], s["ry"]), 1)}
    return {"name": "circle", "cx": r2(s["cx"]), "cy": r2(s["cy"]), "r": round(s["r"], 1)}


def _write_cdd(root: Path, profile: Profile, studies: int, size: int, seed: int,
               difficulty: float, workers: int | None) -> tuple[list[dict], int]:
    rng = np.random.default_rng([seed, 3])
    plans = plan_breasts(profile, studies, rng)
    densities = _study_densities(rng, profile, plans, studies)
    tasks, rows = [], []
    for i in range(studies):
        pid = i + 1
        for j, lat in enumerate("LR"):
            plan = plans[2 * i + j]
            for position in ("CC", "MLO"):
                view = lat + position
                stem_dm, stem_cm = f"P{pid}_{lat}_DM_{position}", f"P{pid}_{lat}_CM_{position}"
                tasks.append({"seed": [seed, 4, i, j, int(position == "MLO")], "view": view,
                              "density": densities[i], "lesions": _view_lesions(plan, position, rng),
                              "size": size, "difficulty": difficulty, "aspect": profile.aspect,
                              "dm": str(root / CDD_DM_DIR / f"{stem_dm}.jpg"),
                              "cm": str(root / CDD_CM_DIR / f"{stem_cm}.jpg")})
                rows.append({"pid": pid, "lat": lat, "position": position, "view": view, "plan": plan,
                             "density": densities[i], "stems": (stem_dm, stem_cm), "age": 35 + (i * 11) % 40})
    results = _run_tasks(_cdd_worker, tasks, workers)
    sheet, via, records = [], [], []
    for k, (row, res) in enumerate(zip(rows, results)):
        plan: BreastPlan = row["plan"]
        annotated = row["position"] in plan.roi_views
        findings, tags = _cdd_findings(plan)
        pathology = plan.label.capitalize()
        for t_i, (typ, stem, key) in enumerate((("DM", row["stems"][0], "dm"), ("CESM", row["stems"][1], "cm"))):
            name = stem + (" " if (k + t_i) % 23 == 5 else "")
            sheet.append([name, row["pid"], row["lat"], typ, row["age"], row["density"], _cdd_birads(plan, k),
                          findings, row["position"], tags, SYNTHETIC_NAME, pathology])
            if annotated:
                fname = f"{stem} .jpg" if (k + t_i) % 17 == 3 else f"{stem}.jpg"
                drawn = res["drawn"]
                for r_i, item in enumerate(drawn):
                    via.append([fname, res["sizes"][key], "{}", len(drawn), r_i,
                                json.dumps(_via_shape(item, k + r_i), separators=(",", ":")), "{}"])
        records.append({"image_path": f"{CDD_DM_DIR}/{row['stems'][0]}.jpg", "patient_id": str(row["pid"]),
                        "study_id": str(row["pid"]), "laterality": row["lat"], "view": row["position"],
                        "view_name": row["view"], "label": plan.label, "roi": annotated, "split": ""})
    _write_xlsx(root / CDD_SHEET, "all", _CDD_COLUMNS, sheet)
    _write_csv(root / CDD_SEGMENTATIONS, _VIA_COLUMNS, via)
    return records, 2 * len(tasks) + 2


def _write_xlsx(path: Path, sheet: str, header: list[str], rows: list[list[Any]]) -> None:
    """Write a one-sheet workbook with fixed timestamps, so that equal inputs
    give equal bytes (openpyxl stamps the time of saving otherwise)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>" + _FIXED_ISO.encode(), data)
            dst.writestr(zipfile.ZipInfo(info.filename, _FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)


# --------------------------------------------------------------------------- entry point

def _check_args(profile: str, studies: int, size: int) -> None:
    if profile not in PROFILES:
        raise MammoError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if studies < 1:
        raise MammoError(f"--studies must be at least 1 (got {studies})")
    if not 64 <= size <= 4096:
        raise MammoError(f"--size must be within 64..4096 pixels (got {size})")


def _prepare_out(out: Path) -> Path:
    """A fresh temporary folder beside ``out``; refuse to replace a folder that
    holds anything but an earlier phantom, so no real data is ever overwritten."""
    if out.exists():
        if not out.is_dir():
            raise MammoError("exists and is not a folder", out)
        if any(out.iterdir()) and not (out / MARKER_FILE).is_file():
            raise MammoError("folder is not empty and holds no earlier phantom; choose another --out", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def write_phantom(out: str | Path, profile: str, studies: int, size: int = 512, seed: int = 0,
                  difficulty: float | str = "moderate", workers: int | None = None) -> PhantomSummary:
    """Write a seeded synthetic dataset in the real layout of ``profile``.

    The same arguments give the same bytes.  The folder is built beside
    ``out`` and moved into place at the end, replacing an earlier phantom.
    """
    out = Path(out)
    _check_args(profile, studies, size)
    diff = difficulty_value(difficulty)
    prof = PROFILES[profile]
    tmp = _prepare_out(out)
    try:
        writer = _write_vindr if profile == "vindr" else _write_cdd
        records, files = writer(tmp, prof, studies, size, seed, diff, workers)
        summary = PhantomSummary(profile, str(out), studies, size, seed, diff, files + 1, records)
        marker = {k: v for k, v in summary.to_dict().items() if k not in ("records", "out")}
        marker["note"] = f"{SYNTHETIC_NAME}: synthetic images, not patient data"
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
