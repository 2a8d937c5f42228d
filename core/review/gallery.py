"""A dataset image as the model sees it, with its ROI outlined where training puts it.

The gallery shows the cropped, stretched model input; an outline drawn from
the full-frame mask squeezed to that square lands off the lesion whenever the
crop is not the whole frame.  So the ROI goes through the same crop box as
the pixels (:func:`core.pixels.crop.mask_to_input`), the way a training cell
and the ROI finder receive it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.pixels.cache import load_preprocessed_with_box
from core.pixels.spec import PreprocessParams
from core.review.overlay import draw_outline, to_rgb
from core.roifinder.geometry import row_input_mask


def gallery_tile(row: Mapping[str, Any], params: PreprocessParams) -> np.ndarray:
    """RGB model input of a manifest row (``image_path``, ``mask_path``, ``roi_shapes``)
    under ``params``, its ROI outlined in the input's own frame."""
    img, box = load_preprocessed_with_box(row["image_path"], params)
    record = {k: row.get(k) or "" for k in ("image_path", "mask_path", "roi_shapes")}
    return draw_outline(to_rgb(img), row_input_mask(record, box, params.size))
