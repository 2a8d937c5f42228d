"""The decoded mammogram every reader returns, and its 8-bit form."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MammoImage:
    """A decoded mammogram: windowed pixels, the original shape and what was read.

    ``tags`` holds ``laterality`` (L/R/None), ``view_position`` (CC/MLO/None),
    ``photometric``, ``bits_stored``, ``format`` ("dicom" or "image") and
    ``window`` = ``(center, width, kind)`` with kind one of ``LINEAR``,
    ``LINEAR_EXACT``, ``SIGMOID`` (from the file), ``percentile`` (computed;
    center/width describe the range used), ``voi_lut`` or ``dtype`` (8-bit
    image scaled by 255); center/width are ``None`` for the last two;
    ``patient_orientation``: the DICOM tag's values (row, column direction),
    e.g. ``("A", "R")``, or None.
    """

    pixels: np.ndarray
    source_shape: tuple[int, int]
    tags: dict[str, Any] = field(default_factory=dict)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8, rounding and clipping (NaN becomes 0); uint8 passes through."""
    if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8:
        return pixels
    arr = np.nan_to_num(np.asarray(pixels, np.float32), nan=0.0)
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
