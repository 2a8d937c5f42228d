"""ROI geometry: shapes from annotations, mask files, and masks rendered on demand.

Adapters whose ROIs are boxes (VinDr) or drawn regions (CDD-CESM) store them
in the manifest column ``roi_shapes`` as JSON, in the original image's pixels::

    {"width": W, "height": H, "shapes": [
        {"type": "box", "xmin": .., "ymin": .., "xmax": .., "ymax": ..},
        {"type": "polygon", "x": [..], "y": [..]},
        {"type": "ellipse", "cx": .., "cy": .., "rx": .., "ry": .., "theta": radians},
        {"type": "circle", "cx": .., "cy": .., "r": ..},
        {"type": "point", "cx": .., "cy": ..}]}

Masks are rendered at whatever size is asked, so the same annotation serves
a 64-pixel test and a full-field display.  Only ROI *presence* routes a
model; the geometry is for display.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import MaskError

POINT_RADIUS_FRACTION = 0.01  # a VIA "point" is drawn as a dot of 1 % of the width


def shapes_json(width: int, height: int, shapes: list[dict[str, Any]]) -> str:
    """Serialise shapes for the manifest; empty text when there are none."""
    if not shapes:
        return ""
    return json.dumps({"width": int(width), "height": int(height), "shapes": shapes},
                      separators=(",", ":"))


def render_shapes(spec: str | Mapping[str, Any], size: tuple[int, int]) -> np.ndarray:
    """Rasterise a ``roi_shapes`` spec to a ``(h, w)`` uint8 mask of 0/1."""
    if isinstance(spec, str):
        spec = json.loads(spec) if spec else {"width": 1, "height": 1, "shapes": []}
    h, w = size
    sx, sy = w / float(spec["width"]), h / float(spec["height"])
    mask = np.zeros((h, w), np.uint8)
    for s in spec["shapes"]:
        kind = s["type"]
        if kind == "box":
            x0, x1 = sorted((s["xmin"] * sx, s["xmax"] * sx))
            y0, y1 = sorted((s["ymin"] * sy, s["ymax"] * sy))
            x0, y0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
            x1, y1 = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
            mask[y0:max(y0 + 1, y1), x0:max(x0 + 1, x1)] = 1
        elif kind == "polygon":
            pts = np.stack([np.asarray(s["x"], float) * sx, np.asarray(s["y"], float) * sy], 1)
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
        elif kind in ("ellipse", "circle", "point"):
            rx = s.get("rx", s.get("r", POINT_RADIUS_FRACTION * spec["width"]))
            ry = s.get("ry", s.get("r", POINT_RADIUS_FRACTION * spec["width"]))
            centre = (int(round(s["cx"] * sx)), int(round(s["cy"] * sy)))
            axes = (max(1, int(round(rx * sx))), max(1, int(round(ry * sy))))
            cv2.ellipse(mask, centre, axes, math.degrees(s.get("theta", 0.0)), 0, 360, 1, -1)
        else:
            raise ValueError(f"unknown ROI shape type {kind!r}")
    return mask


def read_mask(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask file as 0/1 uint8; refuse ones that are not binary or of another size.

    A mask may be stored 0/1, 0/255 or 0/65535, grey or RGB(A) with equal
    channels.  ``expected_shape`` is the mammogram's ``(h, w)``.
    """
    path = Path(path)
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    if data is None:
        raise MaskError("file not found", path)
    if data.size == 0:
        raise MaskError("empty file (0 bytes)", path)
    _check_header_size(path, expected_shape)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MaskError("not an image OpenCV can read", path)
    if img.ndim == 3:
        colour = img[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1])
                and np.array_equal(colour[..., 1], colour[..., 2])):
            raise MaskError("colour mask: a mask must be grey (black background, white ROI)", path)
        img = colour[..., 0]
    lo, hi = img.min(), img.max()
    if np.count_nonzero((img != lo) & (img != hi)):  # a sort (np.unique) only to word the error
        levels = len(np.unique(img))
        raise MaskError(f"not binary: {levels} distinct grey levels (expected 2)", path)
    if expected_shape is not None and tuple(img.shape[:2]) != tuple(expected_shape):
        raise MaskError(
            f"size {img.shape[1]}×{img.shape[0]} differs from its mammogram's "
            f"{expected_shape[1]}×{expected_shape[0]}", path)
    return (img > 0).astype(np.uint8)


def _check_header_size(path: Path, expected_shape: tuple[int, int] | None) -> None:
    """Refuse a decompression bomb, or a mask of the wrong size, from its header alone."""
    from core.errors import ImageReadError
    from core.pixels.limits import MAX_PIXELS
    from core.pixels.picture import header_size

    try:
        size = header_size(path)
    except ImageReadError as err:
        raise MaskError(err.problem, path) from None
    h, w = size
    if h * w > MAX_PIXELS:
        raise MaskError(f"mask of {w}×{h} pixels exceeds the {MAX_PIXELS // 1_000_000} "
                        "megapixel limit", path)
    if expected_shape is not None and (h, w) != tuple(expected_shape):
        raise MaskError(f"size {w}×{h} differs from its mammogram's "
                        f"{expected_shape[1]}×{expected_shape[0]}", path)


def has_roi(mask: np.ndarray | None) -> bool:
    """The one ROI-presence rule: a mask with at least one foreground pixel.

    A mask file drawn with nothing in it says "no lesion here", so it routes
    the image to the without-ROI cell in the manifest, training, evaluation
    and review alike; a path to such a file is not an ROI.
    """
    return mask is not None and bool(np.any(mask))


def mask_file_has_roi(path: str | Path) -> bool:
    """:func:`has_roi` of a mask file, remembered per file version.

    A manifest is read by every page and command, and a full-field mask takes
    tens of milliseconds to decode, so each (path, size, mtime) is read once
    per process.
    """
    try:
        stat = Path(path).stat()
    except OSError:
        raise MaskError("file not found", path) from None
    return _mask_file_has_roi(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _mask_file_has_roi(path: str, _size: int, _mtime_ns: int) -> bool:
    return has_roi(read_mask(path))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 0/1 mask to ``(h, w)``."""
    return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def row_mask(row: Mapping[str, Any], size: tuple[int, int]) -> np.ndarray | None:
    """The ROI mask of a manifest row at ``size``, or None when it has no ROI."""
    if row.get("mask_path"):
        mask = read_mask(row["mask_path"])
        return resize_mask(mask, size) if has_roi(mask) else None
    if row.get("roi_shapes"):
        return render_shapes(row["roi_shapes"], size)
    return None


def outline(mask: np.ndarray) -> list[np.ndarray]:
    """Contours of a 0/1 mask, as ``(n, 2)`` arrays of (x, y), for drawing outlines."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c[:, 0, :] for c in contours]
