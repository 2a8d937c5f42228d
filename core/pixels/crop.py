"""Find the breast on an 8-bit rendering and map shapes through the crop to it.

A full-field detector image is mostly air: stretched whole to a square
input, the breast of a real screening exam gets 8–32 % of the model's
pixels, and burned-in view labels and markers get some of the rest.  The
strongest public pipelines (the RSNA 2023 winners, NYU's DMV-CNN,
Mammo-CLIP) crop to the breast first; so does every path here that makes a
model input.

Why it is done this way:

* **Largest bright component.** After the rendering, tissue is bright and
  air dark whatever the file's polarity, so a low threshold separates them;
  the breast is the largest connected component.  Burned-in labels ("R-MLO",
  "L CC"), markers and detector padding are separate, smaller components and
  fall away without any text detection.
* **A fixed low threshold, tied to Otsu.** The skin line is the darkest
  tissue (thinnest compression), so the threshold sits well below Otsu's
  tissue/air split: a fraction of it, with a floor above detector noise.
* **The box is kept as fractions** of the image it was found on.  The
  rendering is a power-of-two reduction of the stored image, so the same
  fractions hold on the full-resolution file, on the display copy and on any
  mask the size of the mammogram: one box, no per-resolution bookkeeping.
* **Found on a small copy** (longer side 256 px): a bounding box needs no
  more, and it keeps the crop's cost below a millisecond or two per image.
* **No breast found → no crop.**  A blank or odd image keeps the whole frame
  (``CropBox.full()``) rather than a crop of noise.
* **The mirror travels with the box.**  A box may say ``mirrored``: the crop
  is then flipped left-right (:mod:`core.pixels.orientation` puts every
  chest wall on one side), and masks in and maps out go through the same flip.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MARGIN = 0.02  # of each side, so the skin line is never on the crop's edge
FIND_SIDE = 256  # longer side of the copy the breast is found on
MIN_AREA = 0.02  # a component under this share of the image is not a breast
_THRESHOLD_FRACTION = 0.3  # of Otsu's tissue/air level: keeps the dark skin line in
_THRESHOLD_FLOOR = 6  # grey levels of 255: above detector noise in the air


@dataclass(frozen=True)
class CropBox:
    """The breast's box as fractions of the image's width (x) and height (y).

    ``x1``/``y1`` are exclusive; ``(0, 0, 1, 1)`` is the whole image.  A box
    may reach outside ``[0, 1]`` (a crop squared to keep the aspect ratio):
    what lies outside the image reads as air (zero).  ``mirrored``: the crop
    is flipped left-right, so the model input has its chest wall on the
    spec's side.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    mirrored: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.as_tuple()).all() and self.x0 < self.x1 and self.y0 < self.y1
                and -1.0 <= self.x0 and self.x1 <= 2.0 and -1.0 <= self.y0 and self.y1 <= 2.0):
            raise ValueError(f"crop box {self.as_tuple()} needs x0 < x1, y0 < y1, within [-1, 2]")

    @classmethod
    def full(cls) -> CropBox:
        return cls(0.0, 0.0, 1.0, 1.0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def to_array(self) -> np.ndarray:
        """The box as five float64s (the mirror as 0 / 1), as the preprocess cache stores it."""
        return np.array([*self.as_tuple(), float(self.mirrored)], np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> CropBox:
        """The inverse of :meth:`to_array`; ValueError unless five values."""
        if len(values) != 5:
            raise ValueError(f"a crop box is five numbers, got {len(values)}")
        return cls(*(float(v) for v in values[:4]), mirrored=bool(values[4]))

    @property
    def is_full(self) -> bool:
        return self.as_tuple() == (0.0, 0.0, 1.0, 1.0) and not self.mirrored

    def pixels(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in pixels of an image of ``shape`` (never empty; may
        reach outside the image when the box does)."""
        h, w = int(shape[0]), int(shape[1])
        x0, y0 = int(np.floor(self.x0 * w)), int(np.floor(self.y0 * h))
        x1 = max(int(np.ceil(self.x1 * w)), x0 + 1)
        y1 = max(int(np.ceil(self.y1 * h)), y0 + 1)
        return x0, y0, x1, y1

    def crop(self, img: np.ndarray) -> np.ndarray:
        """The part of ``img`` (2-D or HxWxC) inside the box, flipped left-right when
        ``mirrored``; outside the image is zero."""
        x0, y0, x1, y1 = self.pixels(img.shape)
        h, w = img.shape[:2]
        inner = img[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
        if (x0, y0, x1, y1) != (max(0, x0), max(0, y0), min(w, x1), min(h, y1)):
            pad = [(max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w))]
            inner = np.pad(inner, pad + [(0, 0)] * (img.ndim - 2))
        return inner[:, ::-1] if self.mirrored else inner

    def squared(self, shape: tuple[int, ...]) -> CropBox:
        """The box grown about its centre to a square in pixels of ``shape``: a
        crop that keeps the aspect ratio when stretched to a square input."""
        h, w = int(shape[0]), int(shape[1])
        side = max((self.x1 - self.x0) * w, (self.y1 - self.y0) * h)
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        return CropBox(float(cx - side / w / 2), float(cy - side / h / 2),
                       float(cx + side / w / 2), float(cy + side / h / 2), self.mirrored)

    def flipped(self, mirrored: bool) -> CropBox:
        """The same box with its crop flipped left-right or not."""
        return CropBox(self.x0, self.y0, self.x1, self.y1, mirrored)


def tissue_mask(img: np.ndarray) -> np.ndarray:
    """Bool mask of the largest bright component of a uint8 rendering (tissue bright).

    Empty when no component reaches :data:`MIN_AREA` of the image.
    """
    img = np.asarray(img)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(np.rint(np.asarray(img, np.float32) * 255), 0, 255).astype(np.uint8)
    smooth = cv2.GaussianBlur(img, (0, 0), max(1.0, max(img.shape) / 256))
    otsu, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = max(_THRESHOLD_FLOOR, _THRESHOLD_FRACTION * float(otsu))
    fg = (smooth > level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros(img.shape, bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_AREA * img.size:
        return np.zeros(img.shape, bool)
    return labels == best


def find_breast(img: np.ndarray, margin: float = MARGIN) -> CropBox:
    """The breast's bounding box (plus ``margin`` of each side) on a uint8 rendering."""
    img = np.asarray(img)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    h, w = img.shape
    scale = min(1.0, FIND_SIDE / max(h, w))
    small = img if scale == 1.0 else cv2.resize(
        img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    mask = tissue_mask(small)
    if not mask.any():
        return CropBox.full()
    ys, xs = np.nonzero(mask)
    sh, sw = mask.shape
    return CropBox(max(0.0, float(xs.min() / sw - margin)), max(0.0, float(ys.min() / sh - margin)),
                   min(1.0, float((xs.max() + 1) / sw + margin)),
                   min(1.0, float((ys.max() + 1) / sh + margin)))


def mask_to_input(mask: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """A 0/1 mask the size of the mammogram → the model input's ``(size, size)`` frame.

    Area-resized then thresholded at any coverage, so a small ROI does not
    vanish when shrunk; the part outside the crop is dropped.
    """
    part = box.crop(np.asarray(mask) > 0).astype(np.float32)
    small = cv2.resize(part, (int(size), int(size)), interpolation=cv2.INTER_AREA)
    return (small > 0).astype(np.uint8)


def map_to_full(values: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """A map over the model input (e.g. Grad-CAM) → the full image of ``shape``.

    The inverse of the crop, flip and stretch: the map is flipped back when the
    box is mirrored, resized onto the box, and the rest of the frame (air the
    model never saw) is zero.
    """
    values = np.asarray(values, np.float32)
    if box.mirrored:
        values = np.ascontiguousarray(values[:, ::-1])
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = box.pixels((h, w))
    placed = cv2.resize(values, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((h, w), np.float32)
    out[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = \
        placed[max(0, -y0):placed.shape[0] - max(0, y1 - h), max(0, -x0):placed.shape[1] - max(0, x1 - w)]
    return out
