"""A rendered file → the model's input: window → 8-bit → breast crop → resize → CLAHE.

The paper's preprocessing is "DICOM windowing → 8-bit, then CLAHE" at
384×384.  Choices it leaves open, made here:

* **The breast is cropped first** (:mod:`core.pixels.crop`): its bounding box
  plus a 2 % margin, found on the 8-bit rendering, so air, burned-in labels
  and markers do not take the model's pixels.  ``crop=False`` (``--no-crop``)
  keeps the whole frame, for comparison.
* **The crop is stretched to the square input** (``fit="stretch"``, as the
  paper's fixed 384×384 input implies for the whole frame); ``fit="pad"``
  squares the box first so the aspect ratio is kept.  Stretch is the
  default because it gives the breast every input pixel (on the real RSNA
  exam the breast spans the whole input in both directions, where padding
  leaves it 0.5–0.8 of the width) and because its phantom AUC was no worse
  (README, "Preprocessing").  ROI masks and Grad-CAM maps follow the same
  geometry through the returned :class:`~core.pixels.crop.CropBox`.
* **CLAHE runs on the reduced image**, not the full-field one: 10–50x faster
  and, since the tile grid is relative to the image, the same contrast
  behaviour.
* **One orientation**: the crop is flipped left-right when the chest wall is
  not on the spec's side (``chest_wall="left"``), decided by
  :func:`core.pixels.orientation.chest_wall` (``PatientOrientation``, else
  the pixels), so a mirrored file gives the model the same input.
* **Windowing runs on a reduced image too**: every file is first rendered to
  8 bits at the largest power-of-two reduction whose shorter side stays at
  least the spec's ``source_side`` (:func:`render_source`; by default
  ``max(SOURCE_SIDE, size)``, so a large input is never upsampled).

The spec that decides all of this is :class:`~core.pixels.spec.PreprocessParams`;
the cached loader is :mod:`core.pixels.cache`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.pixels.crop import CropBox, find_breast
from core.pixels.image import MammoImage, to_uint8
from core.pixels.orientation import chest_wall
from core.pixels.read import render_uint8
from core.pixels.spec import PreprocessParams


def render_source(path: str | Path, params: PreprocessParams) -> MammoImage:
    """The 8-bit rendering of a file that ``params`` builds model inputs from.

    The only place a file is rendered for a model: training (through the
    cache), the predictor and the app all call it with the run's spec, so
    they all start from the same pixels (:func:`prepare_input` does the rest).
    """
    return render_uint8(path, int(params.source_side))


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when growing."""
    shrinking = width * height < img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def input_box(img: np.ndarray, params: PreprocessParams,
              patient_orientation: str | Sequence[str] | None = None) -> CropBox:
    """The part of a uint8 rendering that becomes the model input, as fractions, mirrored
    when its chest wall is not on the spec's side (:func:`core.pixels.orientation.chest_wall`)."""
    box = CropBox.full()
    if params.crop:
        box = find_breast(img)
        box = box.squared(img.shape) if params.fit == "pad" else box
    if params.chest_wall == "as-is":
        return box
    return box.flipped(not chest_wall(img, patient_orientation).on_left)


def prepare_input(pixels: np.ndarray, params: PreprocessParams,
                  patient_orientation: str | Sequence[str] | None = None
                  ) -> tuple[np.ndarray, CropBox]:
    """A windowed image (uint8, or float in [0, 1]) → ``(model input, crop box)``.

    8-bit first (the paper's step), then the breast crop turned so the chest
    wall is on the spec's side (``patient_orientation``: the file's DICOM tag,
    when it has one), a square stretch, and CLAHE on the small image (clip 0
    disables CLAHE).  The box maps masks in and Grad-CAM maps back out
    (:mod:`core.pixels.crop`), through the same turn.
    """
    img = to_uint8(pixels)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    box = input_box(img, params, patient_orientation)
    img = _resize(box.crop(img), params.size, params.size)
    if params.clahe_clip > 0:
        clahe = cv2.createCLAHE(clipLimit=float(params.clahe_clip),
                                tileGridSize=(int(params.clahe_tiles),) * 2)
        img = clahe.apply(img)
    return np.ascontiguousarray(img), box


def preprocess_array(pixels: np.ndarray, params: PreprocessParams,
                     patient_orientation: str | Sequence[str] | None = None) -> np.ndarray:
    """The model's uint8 ``(size, size)`` input alone (see :func:`prepare_input`)."""
    return prepare_input(pixels, params, patient_orientation)[0]


def preprocess_file(path: str | Path, params: PreprocessParams) -> tuple[np.ndarray, CropBox]:
    """Decode one file and preprocess it, no cache involved: ``(input, crop box)``."""
    img = render_source(path, params)
    return prepare_input(img.pixels, params, img.tags.get("patient_orientation"))


def to_display(path_or_pixels: str | Path | np.ndarray, size: int) -> np.ndarray:
    """A uint8 image for the UI: windowed, aspect kept, longer side ``size``, no CLAHE.

    The clinician sees the image as the file means it to be seen; the model's
    stretched, CLAHE-enhanced input is :func:`load_preprocessed`.
    """
    if isinstance(path_or_pixels, np.ndarray):
        pixels = path_or_pixels
    else:
        pixels = render_uint8(path_or_pixels, size).pixels
    img = to_uint8(pixels)
    h, w = img.shape[:2]
    scale = size / float(max(h, w))
    return np.ascontiguousarray(_resize(img, max(1, round(w * scale)), max(1, round(h * scale))))
