"""A DICOM's stored values → pixels: float in [0, 1], or 8 bits through one lookup table.

Tissue is bright and padding black whatever the file's polarity
(MONOCHROME1 is inverted).  The 8-bit path renders every possible stored
value once (a table of 256 or 65,536 entries) instead of every pixel, after a
power-of-two block average of the stored values (:mod:`core.pixels.downscale`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.pixels.dicom import dicom_tags, open_dicom
from core.pixels.downscale import block_mean, shrink_factor
from core.pixels.image import MammoImage, to_uint8
from core.pixels.voi import (
    PERCENTILE_SAMPLES,
    apply_voi,
    is_mono1,
    modality,
    padding_mask,
    to_grey,
)

if TYPE_CHECKING:
    from pydicom import Dataset


def read_dicom(path: Path, head: bytes) -> MammoImage:
    """Header checks (before any decoding), decode, modality, VOI, polarity, padding."""
    ds, stored = open_dicom(path, head)
    pixels, window_used = render_float(ds, stored, path)
    return MammoImage(pixels, stored.shape[:2], dicom_tags(ds, window_used, path))


def render_float(ds: Dataset, stored: np.ndarray, path: Path) -> tuple[np.ndarray, tuple]:
    """Stored values → float32 [0, 1], tissue bright, padding 0."""
    padding = padding_mask(ds, stored)
    values = modality(ds, stored, path)
    if values.ndim == 3:
        values = to_grey(values)
    if values.dtype.kind == "f" and stored.dtype.kind == "f" and not np.isfinite(values).all():
        padding = padding | ~np.isfinite(values)
    pixels, window_used = apply_voi(ds, values, padding, path)
    if is_mono1(ds):
        np.subtract(np.float32(1.0), pixels, out=pixels)
    pixels[padding] = 0.0
    return np.ascontiguousarray(pixels, np.float32), window_used


def render_dicom(path: Path, head: bytes, min_side: int) -> MammoImage:
    """:func:`render_uint8` for a DICOM: the lookup table where it applies."""
    ds, stored = open_dicom(path, head)
    k = shrink_factor(stored.shape, min_side)
    if stored.ndim != 2 or stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        pixels, window_used = render_float(ds, stored, path)  # colour, float, 32-bit
        img = block_mean(to_uint8(pixels), k)
    else:
        table, black_padding, window_used = _display_table(ds, stored, path)
        if k > 1 and black_padding:
            img = table[_unsigned(block_mean(stored, k))]
        else:
            img = block_mean(table[_unsigned(stored)], k)
    return MammoImage(np.ascontiguousarray(img), stored.shape[:2],
                      dicom_tags(ds, window_used, path))


def _display_table(ds: Dataset, stored: np.ndarray, path: Path) -> tuple[np.ndarray, bool, tuple]:
    """uint8 rendering of every possible stored value, indexed by their unsigned bits.

    The same float32 steps as :func:`render_float`, run on the 256 or 65,536
    possible values instead of the pixels, so each entry is bit-identical to
    what the full-size path gives that value.  Also says whether padding
    values render black even before they are zeroed (then averaging them with
    tissue is harmless).
    """
    unsigned = np.dtype(f"u{stored.dtype.itemsize}")
    domain = np.arange(1 << (8 * stored.dtype.itemsize), dtype=unsigned).view(stored.dtype)[None]
    padding = padding_mask(ds, domain)[0]
    values = modality(ds, domain, path)
    rendered, window_used = apply_voi(ds, values, None, path,
                                       sample=lambda: _percentile_sample(ds, stored, values[0]))
    if is_mono1(ds):
        np.subtract(np.float32(1.0), rendered, out=rendered)
    table = to_uint8(rendered[0])
    black_padding = not padding.any() or not table[padding].any()
    table[padding] = 0
    return table, black_padding, window_used


def _percentile_sample(ds: Dataset, stored: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Modality values of the pixels :func:`percentile_window` would sample."""
    padding = padding_mask(ds, stored)
    kept = stored[~padding] if padding.any() else stored.ravel()
    step = max(1, kept.size // PERCENTILE_SAMPLES)
    return table[_unsigned(kept[::step])]


def _unsigned(stored: np.ndarray) -> np.ndarray:
    """The same bits as unsigned integers: the table's index (no copy)."""
    return stored.view(np.dtype(f"u{stored.dtype.itemsize}")) if stored.dtype.kind == "i" else stored
