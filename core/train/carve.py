"""The run's validation patients: carved once over the training split, shared by every model.

With a warm start each cell starts from a model trained on the whole
training split.  Had the pooled model and each cell carved their own
validation patients (as runs before this rule did, with different seeds),
most of a cell's validation patients would have been in the pooled model's
training images (86 % on a 200-study VinDr-like manifest), and the epoch,
calibration and threshold chosen on them would have been chosen on images the
starting weights had learnt.  So one patient-grouped carve is made per run:
the pooled model trains on the rest only, and a cell's validation images are
the run's validation patients' images in that cell.

The carve is stratified by label and ROI presence together, so the ROI-aware
grid's small ``roi`` cells get validation images of their own as often as
the patient grouping allows.
"""
from __future__ import annotations

import pandas as pd

from core.grid import Cell
from core.train.config import TrainConfig, cell_rows, class_counts, derive_seed

VALIDATION_RULE = "one patient-grouped carve per run, stratified by label and ROI presence"
"""Recorded in run.json: a run carved under another rule is not resumed (core.train.runinfo)."""


def run_carve(train_df: pd.DataFrame, config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's training and validation rows: validation patients never train any model
    that is selected, calibrated or thresholded on them.

    Empty validation when no usable carve exists (one patient, or a training
    side left without a class): every model then trains on every row and
    says so in its meta.json, as a cell without validation always has.
    """
    from core.datasets.split import grouped_split

    stratum = train_df["label"].astype(str) + "/" + train_df["roi"].astype(bool).astype(str)
    try:
        side = grouped_split(train_df.assign(_stratum=stratum), config.val_fraction,
                             derive_seed(config.seed, "validation") % 2**31, label="_stratum")
    except ValueError:
        return train_df, train_df.iloc[:0]
    fit, val = train_df[side == "train"], train_df[side == "test"]
    if min(class_counts(fit).values()) < 1:
        return train_df, train_df.iloc[:0]
    return fit, val


def cell_carve(fit: pd.DataFrame, val: pd.DataFrame, cell: Cell
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A cell's share of the run's carve; all its rows train when its share of the
    training side lacks a class (it then has no validation images, and says so)."""
    cell_fit, cell_val = cell_rows(fit, cell), cell_rows(val, cell)
    if min(class_counts(cell_fit).values()) < 1:
        return pd.concat([cell_fit, cell_val]), cell_val.iloc[:0]
    return cell_fit, cell_val
