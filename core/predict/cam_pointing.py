"""A run's Grad-CAM pointing on a manifest: do its maps peak on the lesion?

For every malignant image with an ROI, each grid's serving model (routed as
:func:`core.predict.predict_manifest` routes it) makes a CAM over the model
input, the ROI is brought into the same coordinates through the same breast
crop and resize as the pixels (:func:`core.pixels.crop.mask_to_input` with the
image's own crop box), and
:func:`core.evaluate.pointing.pointing_score` scores the peaks.

Why here and not in :mod:`core.evaluate`: evaluation reads prediction tables,
never models, so it can be re-run without a GPU.  CAMs need the models and
the ROI geometry of the manifest, which the places that already run the
models have at hand (the grid runner after training, external validation);
they write ``cam_pointing.json`` beside ``predictions.csv`` and evaluation
merges it into ``metrics.json``.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from core.datasets.manifest import label_codes
from core.evaluate.constants import MODE_KEYS
from core.evaluate.pointing import DILATION_FRACTION, pointing_score
from core.grid import MODES
from core.models import cam_target
from core.pixels.crop import mask_to_input
from core.predict import Predictor
from core.roifinder.geometry import row_mask_full

CAM_POINTING_FILE = "cam_pointing.json"


def _scored_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Malignant rows with an ROI: the only images where "pointing at the lesion" means anything."""
    malignant = label_codes(df["label"]) == 1
    return df[malignant & df["roi"].astype(bool).to_numpy()].reset_index(drop=True)


def run_cam_pointing(predictor: Predictor, df: pd.DataFrame) -> dict[str, Any]:
    """``{"baseline": score, "roi_aware": score, "method", "dilation", "roi_outside_input"}``.

    Each score is :func:`~core.evaluate.pointing.pointing_score`'s
    ``{"hit_rate", "n", "chance"}``.  Images are routed per grid as in
    prediction (fallbacks included); an image no model of a grid serves is
    not scored in that grid, nor is an image whose ROI lies wholly outside
    the breast crop (counted in ``roi_outside_input``).  ``df`` is a finalized
    manifest (``roi``, ``view_name``, ``mask_path`` / ``roi_shapes``).
    """
    from core.pixels.cache import load_preprocessed_with_box

    rows = _scored_rows(df)
    size = predictor.img_size
    images, masks, keep = [], [], []
    for i, row in rows.iterrows():
        image, box = load_preprocessed_with_box(row["image_path"], predictor.params)
        mask = mask_to_input(row_mask_full(row), box, size)
        if mask.any():  # an ROI wholly outside the breast crop cannot be pointed at
            images.append(image)
            masks.append(mask)
            keep.append(i)
    outside = len(rows) - len(keep)
    rows = rows.loc[keep].reset_index(drop=True)
    out: dict[str, Any] = {}
    for mode in MODES:
        if mode not in predictor.modes:
            continue
        groups: dict[str, list[int]] = defaultdict(list)
        for i, row in rows.iterrows():
            cell = predictor.route(str(row["view_name"]), True, mode).cell
            if cell is not None:
                groups[cell].append(int(i))
        maps, scored_masks = [], []
        for cell, members in groups.items():
            _, cams = predictor.probabilities_and_cams(cell, np.stack([images[i] for i in members]))
            maps.extend(cams)
            scored_masks.extend(masks[i] for i in members)
        out[MODE_KEYS[mode]] = pointing_score(maps, scored_masks)
    model = next(iter(predictor.models.values()))
    out["method"] = cam_target(model, predictor.cam_recipe).recipe.describe()
    out["dilation"] = DILATION_FRACTION
    out["roi_outside_input"] = outside
    return out
