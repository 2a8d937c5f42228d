"""Stored values → [0, 1]: modality LUT, VOI (window or LUT) and the percentile fallback.

PS3.3 C.11: stored values → modality LUT (Rescale Slope / Intercept) → VOI
(the first VOI LUT Sequence item, else the first Window Center/Width with its
VOI LUT Function, else a robust percentile window).  The maths lives here,
apart from file handling, so the full-size float path and the 8-bit lookup
table run the same steps.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ImageReadError
from core.pixels.limits import short_error

if TYPE_CHECKING:
    from pydicom import Dataset

PERCENTILES = (0.5, 99.5)  # robust window when the file carries none
PERCENTILE_SAMPLES = 1_000_000  # percentiles on a strided sample: same answer, 10x faster


def is_mono1(ds: Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"


def padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Pixels equal to PixelPaddingValue, or in [value, PixelPaddingRangeLimit].

    Padding is the area outside the detector or the collimation: it must
    neither stretch the window nor show up as tissue.
    """
    value = ds.get("PixelPaddingValue")
    if value is None or stored.ndim != 2:  # padding is defined for grey images only
        return np.zeros(stored.shape[:2], bool)
    value = int(value)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        return stored == value
    lo, hi = sorted((value, int(limit)))
    return (stored >= lo) & (stored <= hi)


def modality(ds: Dataset, stored: np.ndarray, path: Path) -> np.ndarray:
    """Modality LUT (rescale or LUT sequence) as float32 in output units.

    float32 holds every 16-bit value exactly and halves the memory of a 30 MP
    image compared with pydicom's float64.
    """
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        try:
            return np.asarray(apply_modality_lut(stored, ds), np.float32)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            raise ImageReadError(f"invalid modality LUT ({short_error(err)})", path) from None
    slope = _first(ds.get("RescaleSlope"))
    intercept = _first(ds.get("RescaleIntercept"))
    values = stored.astype(np.float32)  # always a fresh array: edited in place below
    if slope is not None and slope != 1.0:
        values *= np.float32(slope)
    if intercept:
        values += np.float32(intercept)
    return values


def to_grey(values: np.ndarray) -> np.ndarray:
    """Luminance (BT.601) of colour pixels; pydicom has already turned YBR into RGB."""
    return values[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)


def apply_voi(ds: Dataset, values: np.ndarray, padding: np.ndarray | None, path: Path,
               sample: Callable[[], np.ndarray] | None = None
               ) -> tuple[np.ndarray, tuple[float | None, float | None, str]]:
    """First VOI LUT item, else first window, else a percentile window (of what
    ``sample()`` returns when given: the pixels' values, when ``values`` is a lookup
    table's domain; only called when no window of the file applies)."""
    seq = ds.get("VOILUTSequence")
    if seq:
        return _voi_lut(ds, seq[0], values, path), (None, None, "voi_lut")
    file_window = _file_window(ds)
    if file_window is not None:
        return window(values, *file_window), file_window
    if sample is None:
        return percentile_window(values, padding, path)
    lo, hi = percentile_range(sample(), None, path)
    return stretch(values, lo, hi), ((lo + hi) / 2.0, hi - lo, "percentile")


def _file_window(ds: Dataset) -> tuple[float, float, str] | None:
    """The file's first usable ``(center, width, function)``, or None."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if center is not None and width is not None and _valid_width(width, function):
        return center, width, function
    return None


def _first(value: Any) -> float | None:
    """The first of a multi-valued window tag (the file's preferred one)."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _valid_width(width: float, function: str) -> bool:
    return width >= 1 if function == "LINEAR" else width > 0


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """PS3.3 C.11.2.1.2 windowing, output scaled to [0, 1] (float32).

    LINEAR: below ``c - 0.5 - (w-1)/2`` → 0, above ``c - 0.5 + (w-1)/2`` → 1,
    else ``((x - (c - 0.5)) / (w - 1) + 0.5)``.  LINEAR_EXACT: ``(x - c) / w + 0.5``
    clipped.  SIGMOID: ``1 / (1 + exp(-4 (x - c) / w))``.
    """
    x = np.array(values, np.float32)  # a copy, transformed in place
    if function == "SIGMOID":
        x -= np.float32(center)
        x *= np.float32(-4.0 / width)
        with np.errstate(over="ignore"):
            np.exp(x, out=x)
        x += 1.0
        np.reciprocal(x, out=x)
    elif function == "LINEAR_EXACT" or width > 1:
        offset, scale = (center, width) if function == "LINEAR_EXACT" else (center - 0.5, width - 1.0)
        x -= np.float32(offset)
        x *= np.float32(1.0 / scale)
        x += 0.5
    else:  # LINEAR with width 1: a threshold
        x = (x > center - 0.5).astype(np.float32)
    return np.clip(x, 0.0, 1.0, out=x)


def _voi_lut(ds: Dataset, item: Dataset, values: np.ndarray, path: Path) -> np.ndarray:
    """A VOI LUT Sequence item applied to modality values, scaled by its bit depth."""
    try:
        n, first, bits = (int(v) for v in item.LUTDescriptor)
        n = n or 65536
        raw = item["LUTData"].value
        if isinstance(raw, (bytes, bytearray)):
            lut = np.frombuffer(bytes(raw)[: 2 * n], dtype=_word_order(ds))
        else:
            lut = np.asarray(list(raw) if not np.isscalar(raw) else [raw], np.float64)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ImageReadError(f"invalid VOI LUT Sequence ({short_error(err)})", path) from None
    if lut.size == 0:
        raise ImageReadError("empty VOI LUT", path)
    lut = lut.astype(np.float64)
    index = np.clip(np.rint(np.nan_to_num(values)) - first, 0, lut.size - 1).astype(np.int64)
    top = max(float(2 ** bits - 1) if 1 <= bits <= 16 else 0.0, float(lut.max()), 1.0)
    return (lut[index] / top).astype(np.float32)


def _word_order(ds: Dataset) -> str:
    """numpy dtype of an OW LUT's 16-bit words: the file's byte order."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return "<u2" if ts is None or ts.is_little_endian else ">u2"
    except (AttributeError, ValueError):
        return "<u2"


def percentile_window(values: np.ndarray, padding: np.ndarray | None, path: str | Path
                      ) -> tuple[np.ndarray, tuple[float, float, str]]:
    """Window the 0.5–99.5 % range of the non-padding pixels onto [0, 1].

    Used when the file has no window of its own: robust to a few hot pixels
    and to large empty background, unlike min/max.
    """
    x = np.asarray(values)
    finite = np.isfinite(x) if x.dtype.kind == "f" else None
    lo, hi = percentile_range(x, padding, path)
    out = np.array(x, np.float32)
    if finite is not None:
        out[~finite] = lo
    return stretch(out, lo, hi), ((lo + hi) / 2.0, hi - lo, "percentile")


def percentile_range(values: np.ndarray, padding: np.ndarray | None, path: str | Path
                     ) -> tuple[float, float]:
    """``(lo, hi)``: the 0.5 and 99.5 percentiles of the finite, non-padding values
    (a strided sample of at most 2 × :data:`PERCENTILE_SAMPLES`), min/max if equal."""
    x = np.asarray(values)
    finite = np.isfinite(x) if x.dtype.kind == "f" else np.ones(x.shape, bool)
    keep = finite if padding is None else (~padding & finite)
    sample = x[keep]
    if sample.size == 0:
        raise ImageReadError("every pixel is padding or not a number, nothing to show", path)
    step = max(1, sample.size // PERCENTILE_SAMPLES)
    lo, hi = (float(v) for v in np.percentile(sample[::step], PERCENTILES))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        raise ImageReadError("constant image, nothing to show", path)
    return lo, hi


def stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(values - lo) / (hi - lo)`` clipped to [0, 1], in place on a float32 array."""
    values -= np.float32(lo)
    values *= np.float32(1.0 / (hi - lo))
    return np.clip(values, 0.0, 1.0, out=values)
