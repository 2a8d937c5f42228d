"""The finder's training data: inputs, ROI masks in the input frame, and its validation carve.

Images come through the grids' own cache and crop (:func:`core.pixels.cache.load_preprocessed_with_box`),
so the finder sees what the grids see; each mask goes through that image's
crop box (:func:`geometry.row_input_mask`).  Only ROI *presence* and the
ROI's pixels are targets here, never the malignancy label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from core.pixels.cache import load_preprocessed_with_box
from core.pixels.crop import CropBox
from core.roifinder.geometry import full_shape, row_input_mask, truth_boxes


@dataclass
class FinderData:
    """uint8 images ``(N, 1, S, S)``, 0/1 masks ``(N, 1, S, S)``, presence ``(N,)`` float,
    each image's crop box, full-frame shape and annotated boxes (to score its proposals in
    its own pixels).  Everything training needs, read once: a Ray task gets it through the
    object store and opens no file."""

    images: torch.Tensor
    masks: torch.Tensor
    present: torch.Tensor
    crops: list[CropBox] = field(default_factory=list)
    shapes: list[tuple[int, int]] = field(default_factory=list)
    truths: list[list[list[float]]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.images.shape[0])


def build_data(df: pd.DataFrame, params) -> FinderData:
    """Inputs and input-frame masks of every row (``params``: the finder's PreprocessParams)."""
    size = int(params.size)
    images = torch.empty((len(df), 1, size, size), dtype=torch.uint8)
    masks = torch.zeros((len(df), 1, size, size), dtype=torch.uint8)
    crops, shapes, truths = [], [], []
    for i, row in enumerate(df.to_dict("records")):
        image, box = load_preprocessed_with_box(row["image_path"], params)
        images[i, 0] = torch.from_numpy(np.ascontiguousarray(image))
        masks[i, 0] = torch.from_numpy(row_input_mask(row, box, size))
        crops.append(box)
        shapes.append(full_shape(row))
        truths.append(truth_boxes(row))
    present = (masks.flatten(1).amax(1) > 0).float()
    return FinderData(images, masks, present, crops, shapes, truths)


def carve(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patient-grouped validation rows, stratified by ROI presence (the finder's label).

    Empty validation when no usable carve exists (one patient, or a side
    left without images of both kinds): the caller then trains on every row.
    """
    from core.datasets.split import grouped_split

    roi = df["roi"].astype(bool)
    if roi.nunique() < 2:
        return df, df.iloc[:0]
    strat = df.assign(_roi=np.where(roi, "roi", "noroi"))
    try:
        side = grouped_split(strat, fraction, seed, label="_roi")
    except ValueError:
        return df, df.iloc[:0]
    fit, val = df[side == "train"], df[side == "test"]
    if fit["roi"].astype(bool).nunique() < 2 or val["roi"].astype(bool).nunique() < 2:
        return df, df.iloc[:0]
    return fit, val
