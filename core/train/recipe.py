"""The served recipe on one training set: warm start, the cells, per-grid calibration.

The run and every cross-validation fold go through :func:`train_recipe`, so
CV scores exactly what the run serves: each fold carves its own validation
patients, trains its own warm-start model on the rest of its training
patients, starts its cells from it and calibrates them per grid.  On a CPU
that costs each fold the pooled model's epochs as well as the cells' (about
twice a fold without it, for the demo's 12 + 4 epochs), which is the price
of a CV figure that describes the served models rather than a cheaper recipe
nobody serves; CV is opt-in (``--cv K``) for that reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from core.train.calibrate import calibrate_grids
from core.train.carve import run_carve
from core.train.config import CellResult, TrainConfig
from core.train.data import ImageBank, steps_per_epoch
from core.train.planned import plan_cells, planned_steps, train_planned
from core.train.progress import Progress
from core.train.runinfo import write_run
from core.train.warmstart import train_pooled


def describe_recipe(config: TrainConfig) -> str:
    """One sentence for cv.json and the Compare page: what each fold trained."""
    start = (f"a warm-start model ({config.warm_start} epochs) on the fold's training patients, "
             "then each cell from it" if config.warm_start
             else "each cell from the run's starting weights (no warm start)")
    return (f"Each fold trains the served recipe on its other folds: {start}, validation "
            "patients carved once per fold, calibration per grid.")


def recipe_steps(train_df: pd.DataFrame, config: TrainConfig) -> int:
    """Optimiser steps of :func:`train_recipe` on ``train_df`` (for the ETA)."""
    pooled = steps_per_epoch(len(run_carve(train_df, config)[0]), config.batch_size)
    return planned_steps(plan_cells(train_df, config), config) + config.warm_start * pooled


def train_recipe(train_df: pd.DataFrame, out_dir: Path, config: TrainConfig, progress: Progress,
                 bank: ImageBank, info: dict[str, Any] | None) -> dict[str, CellResult]:
    """Train (or keep) the warm-start model and every cell of ``train_df`` under ``out_dir``,
    then calibrate each grid; ``info`` (run.json's dict) records it all, None for a CV fold."""
    planned = plan_cells(train_df, config)
    if config.warm_start:
        config = train_pooled(train_df, out_dir, config, progress, bank, info)
        if info is not None:
            write_run(out_dir, info)
    results = train_planned(planned, out_dir, config, progress, bank, info)
    finish_recipe(out_dir, results, info)
    return results


def finish_recipe(out_dir: Path, results: dict[str, CellResult], info: dict[str, Any] | None
                  ) -> None:
    """Calibrate each grid of a recipe whose cells are all trained, and record it in ``info``
    (run.json's dict; None for a CV fold)."""
    calibration = calibrate_grids(out_dir, results)
    if info is not None:
        info["calibration"] = calibration
        for name, result in results.items():
            info["cells"][name] = result.to_json()
        write_run(out_dir, info)
