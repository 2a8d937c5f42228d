"""The finder's geometry: masks into the model input, boxes back out.

The finder's input and crop box are the grids' own (``core.pixels.preprocess``);
every coordinate change of the finder lives here, so the grids' breast crop
(:mod:`core.pixels.crop`) applies to the finder exactly as it applies to the grids:
the same rendering, the same crop box, the same stretch.  Three frames:

* **full**: the mammogram's own pixels (``(h, w)`` of the stored image; the
  frame masks, ``roi_shapes`` and the reported boxes use);
* **box**: the breast's crop box, fractions of the full frame
  (:class:`core.pixels.crop.CropBox`; the whole frame when no crop is made);
* **input**: the ``(size, size)`` square the model sees (the box stretched).

A box ``[x0, y0, x1, y1]`` is in pixel-edge coordinates (``x1`` exclusive),
so a one-pixel component at column 3 is ``[3, y, 4, y + 1]``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.pixels.crop import CropBox, mask_to_input

Box = list[float]  # [x0, y0, x1, y1]


def full_shape(row: Mapping[str, Any]) -> tuple[int, int]:
    """``(h, w)`` of a manifest row's mammogram: from ``roi_shapes`` if it says, else the file."""
    spec = row.get("roi_shapes")
    if spec:
        data = json.loads(spec)
        return int(data["height"]), int(data["width"])
    return file_shape(row["image_path"])


def file_shape(path: str | Path) -> tuple[int, int]:
    """``(h, w)`` of an image file, from its header when it has one (DICOM Rows /
    Columns, a picture's header), else by decoding it."""
    from core.errors import ImageReadError
    from core.pixels.picture import header_size
    from core.pixels.read import render_uint8

    path = Path(path)
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "Rows" in ds and "Columns" in ds:
            return int(ds.Rows), int(ds.Columns)
    except Exception:  # not DICOM (or an odd header): the picture reader or a decode decides
        pass
    try:
        return header_size(path)
    except ImageReadError:  # e.g. a DICOM without preamble: the reader sniffs it (or refuses)
        shape = render_uint8(path, 8).source_shape
        return int(shape[0]), int(shape[1])


def row_mask_full(row: Mapping[str, Any], max_side: int = 1024) -> np.ndarray | None:
    """A row's ROI as a full-frame-shaped 0/1 mask (shapes rendered at most ``max_side``
    on the longer side: the crop box is in fractions, so scale does not matter), or None."""
    from core.datasets.roi import has_roi, read_mask, render_shapes

    if row.get("mask_path"):
        mask = read_mask(row["mask_path"])
        return mask if has_roi(mask) else None
    if row.get("roi_shapes"):
        h, w = full_shape(row)
        scale = min(1.0, max_side / max(h, w))
        return render_shapes(row["roi_shapes"], (max(1, round(h * scale)), max(1, round(w * scale))))
    return None


def row_input_mask(row: Mapping[str, Any], box: CropBox, size: int) -> np.ndarray:
    """A row's ROI in the input frame (zeros when it has none): the finder's target."""
    mask = row_mask_full(row)
    if mask is None:
        return np.zeros((size, size), np.uint8)
    return mask_to_input(mask, box, size)


def truth_boxes(row: Mapping[str, Any]) -> list[Box]:
    """The annotated ROIs of a row as full-frame boxes: one per shape of ``roi_shapes``
    (a VinDr finding, a CDD-CESM region), or one per connected component of a mask file,
    however many and however small (an annotated ROI is never speckle).

    The one rule for the finder's truth: its validation box IoU, the test
    table's ``truth_boxes`` and the FROC all read the ROIs from here.
    """
    from core.datasets.roi import read_mask, render_shapes

    if row.get("mask_path"):
        mask = read_mask(row["mask_path"]).astype(np.float32)
        return component_boxes(mask, 0.5, max_boxes=None, min_pixels=1)[0]
    if not row.get("roi_shapes"):
        return []
    data = json.loads(row["roi_shapes"])
    h, w = int(data["height"]), int(data["width"])
    out = []
    for shape in data["shapes"]:
        one = render_shapes({"width": w, "height": h, "shapes": [shape]}, (h, w))
        ys, xs = np.nonzero(one)
        if len(xs):
            out.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    return out


def component_boxes(prob: np.ndarray, level: float, max_boxes: int | None = 3,
                    min_pixels: int = 2) -> tuple[list[Box], list[float]]:
    """Boxes (in ``prob``'s frame) of the connected regions of ``prob >= level``, best first.

    Each region's score is its highest probability; regions under
    ``min_pixels`` pixels are speckle and dropped; at most ``max_boxes`` are
    kept (all when None).
    """
    fg = (np.asarray(prob) >= level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    found = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < min_pixels:
            continue
        score = float(np.asarray(prob)[labels == k].max())
        found.append((score, [float(x), float(y), float(x + bw), float(y + bh)]))
    found.sort(key=lambda t: -t[0])
    found = found if max_boxes is None else found[:max_boxes]
    return [b for _, b in found], [s for s, _ in found]


def input_to_full(boxes: Sequence[Box], box: CropBox, size: int,
                  shape: tuple[int, int]) -> list[Box]:
    """Input-frame boxes → full-frame pixel boxes of an image of ``shape`` ``(h, w)``,
    clipped to the image and rounded to 0.1 px (a mirrored crop is flipped back)."""
    h, w = int(shape[0]), int(shape[1])
    sx, sy = (box.x1 - box.x0) / size, (box.y1 - box.y0) / size
    out = []
    for x0, y0, x1, y1 in boxes:
        if box.mirrored:
            x0, x1 = size - x1, size - x0
        fx = [(box.x0 + x * sx) * w for x in (x0, x1)]
        fy = [(box.y0 + y * sy) * h for y in (y0, y1)]
        out.append([round(min(max(v, 0.0), lim), 1)
                    for v, lim in ((fx[0], w), (fy[0], h), (fx[1], w), (fy[1], h))])
    return out


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes (0 when disjoint)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
