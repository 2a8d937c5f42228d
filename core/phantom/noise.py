"""Random fields that make synthetic tissue look like tissue.

Kept apart from the anatomy that uses them: they know nothing about breasts,
only about spectra and rays, and are the costly part of drawing a view.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def power_noise(rng: np.random.Generator, h: int, w: int, beta: float, step: int = 1) -> np.ndarray:
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


def radial_streaks(rng: np.random.Generator, h: int, w: int, centre: tuple[float, float]) -> np.ndarray:
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


def smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 below ``a``, 1 above ``b``, a smooth ramp between: soft edges, not seams."""
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, clipped so that steep edges never overflow ``exp``."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
