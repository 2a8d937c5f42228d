"""Pictures (PNG, JPEG, PGM, TIFF) through OpenCV, their size read from the header first.

8-bit is scaled by 255 (such files are already rendered for display, e.g.
CDD-CESM JPEGs); 16-bit and float files are raw detector values more often
than not, so they get the same percentile window as a DICOM without one.
Colour is converted to grey by luminance.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import ImageReadError
from core.pixels.downscale import block_mean, shrink_factor
from core.pixels.image import MammoImage, to_uint8
from core.pixels.limits import MAX_PIXELS, check_size, short_error
from core.pixels.sniff import content_hint, read_head
from core.pixels.voi import percentile_window


def read_picture(path: Path, head: bytes) -> MammoImage:
    """PNG / JPEG / PGM / TIFF through OpenCV, size checked from the header first."""
    arr = _decode_picture(path, head)
    pixels, window_used = _picture_pixels(arr, path)
    return MammoImage(pixels, arr.shape[:2], _picture_tags(arr, window_used))


def render_picture(path: Path, head: bytes, min_side: int) -> MammoImage:
    """:func:`render_uint8` for an image file: 8-bit files need no arithmetic at all."""
    arr = _decode_picture(path, head)
    if arr.dtype == np.uint8:
        img, window_used = arr, (None, None, "dtype")
    else:
        pixels, window_used = _picture_pixels(arr, path)
        img = to_uint8(pixels)
    return MammoImage(np.ascontiguousarray(block_mean(img, shrink_factor(arr.shape, min_side))),
                      arr.shape[:2], _picture_tags(arr, window_used))


def _picture_pixels(arr: np.ndarray, path: Path) -> tuple[np.ndarray, tuple]:
    """8-bit files are rendered for display already (÷ 255); deeper ones get a percentile window."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0), (None, None, "dtype")
    pixels, window_used = percentile_window(arr, None, path)
    pixels[~np.isfinite(arr)] = 0.0
    return np.ascontiguousarray(pixels, np.float32), window_used


def _decode_picture(path: Path, head: bytes) -> np.ndarray:
    """The grey 2-D array of an image file, refusing oversize and constant 8-bit images."""
    check_size(*header_size(path), path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except (cv2.error, OSError, ValueError, MemoryError) as err:
        raise ImageReadError(f"image cannot be decoded ({short_error(err)})", path) from None
    if arr is None:
        raise ImageReadError(f"not an image OpenCV can read (looks like {content_hint(head)})",
                             path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        arr = _picture_grey(arr)
    if arr.ndim != 2:
        raise ImageReadError(f"unexpected image shape {arr.shape}", path)
    check_size(arr.shape[0], arr.shape[1], path)
    if arr.dtype == np.uint8 and int(arr.max()) == int(arr.min()):
        raise ImageReadError("constant image, nothing to show", path)
    return arr


def _picture_tags(arr: np.ndarray, window_used: tuple) -> dict[str, Any]:
    bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(arr.dtype, arr.dtype.itemsize * 8)
    return {"format": "image", "laterality": None, "view_position": None,
            "photometric": "MONOCHROME2", "bits_stored": bits, "window": window_used,
            "patient_orientation": None, "patient_id": None, "study_uid": None}


def _picture_grey(arr: np.ndarray) -> np.ndarray:
    """BGR(A) → grey by luminance, keeping the bit depth (alpha is ignored)."""
    bgr = arr[..., :3]
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)
    return (bgr.astype(np.float64) @ np.array([0.114, 0.587, 0.299])).astype(np.float32)


def header_size(path: Path) -> tuple[int, int]:
    """(rows, cols) from the image header without decoding, via Pillow; a picture whose
    size its header does not give is refused.

    OpenCV decodes before it can be asked a size, and some of its formats
    (Radiance HDR, OpenEXR, whatever the file's name) go up to a gigapixel,
    so a picture Pillow cannot size is never handed to it.  Pillow reads only
    the header here; it is a dependency of Streamlit and torchvision, so it is
    always installed with the app.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise ImageReadError(f"image larger than the {MAX_PIXELS // 1_000_000} megapixel limit",
                             path) from None
    except Exception:  # Pillow does not know the format, or the header is broken
        raise ImageReadError(f"not an image whose size its header gives (looks like "
                             f"{content_hint(read_head(path))}); use PNG, JPEG, TIFF, PGM or BMP",
                             path) from None
    return int(height), int(width)
