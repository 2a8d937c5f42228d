"""Warm start (``--warm-start N``): one model on every training image first, each cell from it.

The grids split a dataset four and eight ways.  On a 200-study VinDr-like
set a per-view cell sees about 100 training images, 15 of them malignant:
too few for a network trained from scratch to learn what a lesion looks
like, and no public mammography weights can be assumed.  The pooled model
sees every view's training images (four times the data, and lesions look the
same in every view), so each cell starts from features that already respond
to lesions and only adapts them to its view and ROI stratum: the pooled
model trains ``warm_start`` epochs, each cell then ``epochs`` (fewer suffice).

What keeps it honest: the pooled model is trained on the **training split
only**, and within it on the run's training patients only: the run's
validation patients are carved once (:mod:`core.train.carve`) and are every
cell's validation patients too, so no cell's epoch, calibration or threshold
is chosen on an image its starting weights learnt (``split.json`` in each
model's folder lets anyone check; :func:`core.runfolder.splits.leaks`).  The
cells are still one model each; the pooled model itself never serves a
prediction.  Its weights are stored (``pooled/weights.safetensors``,
SHA-256 in ``run.json`` under ``"pooled"``) and verified before any cell
loads them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from core.runfolder import layout as runs
from core.train.carve import run_carve
from core.train.config import TrainConfig
from core.train.data import ImageBank
from core.train.progress import Progress

RUN_KEY = "pooled"


@dataclass(frozen=True)
class PooledCell:
    """The warm-start model's territory: every view, with and without ROI."""

    name: str = RUN_KEY
    mode: str = RUN_KEY

    def __str__(self) -> str:
        return self.name


POOLED = PooledCell()


def train_pooled(train_df: pd.DataFrame, out_dir: Path, config: TrainConfig, progress: Progress,
                 bank: ImageBank, info: dict[str, Any] | None) -> TrainConfig:
    """Train (or, on resume, keep) the pooled model; the config the cells then train with.

    The returned config names the pooled weights and their SHA-256 in
    ``init_weights`` / ``init_sha256``, so a cell refuses a changed file.  ``info`` (run.json's
    dict) records it; None for a CV fold's.
    """
    from core.train.loop import train_cell

    fit, val = run_carve(train_df, config)
    if info is not None:
        info[RUN_KEY] = {**info.get(RUN_KEY, {}), "status": "running"}
    result = train_cell(POOLED, fit, val, replace(config, epochs=config.warm_start,
                                                  init_weights=None, init_sha256=None),
                        out_dir, progress, bank)
    if info is not None:
        info[RUN_KEY] = result.to_json()
    progress.emit("cell_done", cell=POOLED.name, mode=POOLED.mode, best_epoch=result.best_epoch)
    if result.status != "done":
        return config  # too few images to pool: the cells start from scratch, as recorded
    return replace(config, init_weights=str(out_dir / POOLED.name / runs.WEIGHTS_FILE),
                   init_sha256=result.sha256)
