"""Which image edge the chest wall is on: one decision for the model input and the hanging.

Mammograms arrive mirrored (vendors, exports, a flipped scan), so every model
input is turned to have the chest wall on one fixed side (the spec's
``chest_wall``), and the hanging display mirrors each view by the same
decision.  The DICOM tag is trusted first: ``PatientOrientation``'s first
value is the direction the rows run, left to right (PS3.3 C.7.6.1.1.1);
``A`` (towards the nipple) puts the chest wall, which is posterior, on the
left, ``P`` on the right.  Without it the pixels decide
(:func:`core.pixels.viewfind.chest_wall_in_pixels`: the edge the breast's
tissue fills).  When both speak and disagree, the tags are kept and the
disagreement is said, since either may be the wrong one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.pixels.viewfind import MIN_LATERALITY_CONFIDENCE, chest_wall_in_pixels

_ROW_DIRECTION = {"A": True, "P": False}  # PatientOrientation's first value → chest wall on left


@dataclass(frozen=True)
class ChestWall:
    """The decision: chest wall on the image's left or not, what said so, and any
    disagreement between the tags and the pixels (one sentence, or None)."""

    on_left: bool
    source: str  # "tags" or "image"
    warning: str | None = None


def tagged_chest_wall_on_left(patient_orientation: str | Sequence[str] | None) -> bool | None:
    """The chest-wall side ``PatientOrientation`` gives (``"A\\R"``, ``["P", "FL"]``),
    or None when it is absent or names no front/back row direction."""
    if not patient_orientation:
        return None
    values = (patient_orientation.split("\\") if isinstance(patient_orientation, str)
              else list(patient_orientation))
    first = str(values[0]).strip().upper() if values else ""
    return _ROW_DIRECTION.get(first)


def chest_wall(img: np.ndarray, patient_orientation: str | Sequence[str] | None = None
               ) -> ChestWall:
    """Where the chest wall of a rendered mammogram (tissue bright) is: by the tags when
    they say, else by the pixels; a confident contradiction becomes ``warning``."""
    pixels_left, confidence = chest_wall_in_pixels(img)
    tagged = tagged_chest_wall_on_left(patient_orientation)
    if tagged is None:
        return ChestWall(pixels_left, "image")
    warning = None
    if confidence >= MIN_LATERALITY_CONFIDENCE and pixels_left != tagged:
        warning = (f"the DICOM tags (PatientOrientation) put the chest wall on the "
                   f"{_side(tagged)} but the image shows it on the {_side(pixels_left)}: "
                   "the file may be mirrored; the tags are followed")
    return ChestWall(tagged, "tags", warning)


def _side(on_left: bool) -> str:
    return "left" if on_left else "right"
