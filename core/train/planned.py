"""Planning the grid's cells (skip / validation per cell) and training them in order."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.grid import Cell, modes_for, plan
from core.train.carve import cell_carve, run_carve
from core.train.config import CellResult, TrainConfig, cell_rows, class_counts, skip_reason
from core.train.data import ImageBank, steps_per_epoch
from core.train.loop import train_cell
from core.train.progress import Progress
from core.train.runinfo import write_run


@dataclass
class PlannedCell:
    """A cell's plan, fixed before any training: its rows, or why it is skipped."""

    cell: Cell
    fit: pd.DataFrame
    val: pd.DataFrame
    reason: str | None


def plan_cells(train_df: pd.DataFrame, config: TrainConfig) -> list[PlannedCell]:
    """Every cell of the chosen grids with its training / validation rows (its share of the
    run's one carve, :mod:`core.train.carve`) or skip reason."""
    run_fit, run_val = run_carve(train_df, config)
    planned = []
    for mode in modes_for(config.mode):
        for cell in plan(mode):
            rows = cell_rows(train_df, cell)
            reason = skip_reason(rows)
            fit, val = (rows, rows.iloc[:0]) if reason else cell_carve(run_fit, run_val, cell)
            planned.append(PlannedCell(cell, fit, val, reason))
    return planned


def planned_steps(planned: list[PlannedCell], config: TrainConfig) -> int:
    """Optimiser steps the planned cells take, so the ETA counts them before they start."""
    return sum(config.epochs * steps_per_epoch(len(p.fit), config.batch_size)
               for p in planned if p.reason is None)


def train_planned(planned: list[PlannedCell], out_dir: Path, config: TrainConfig,
                  progress: Progress, bank: ImageBank, info: dict[str, Any] | None
                  ) -> dict[str, CellResult]:
    """Train (or keep, or skip) each planned cell, recording it in ``info`` as it goes."""
    results = {}
    for p in planned:
        name = p.cell.name
        if p.reason is not None:
            result = CellResult(name, "skipped", reason=p.reason,
                                counts={"train": class_counts(p.fit), "val": class_counts(p.val)})
            progress.emit("cell_skipped", cell=name, mode=p.cell.mode, reason=p.reason)
        else:
            if info is not None:
                info["cells"][name] = {**info["cells"].get(name, {}), "status": "running"}
                write_run(out_dir, info)
            result = train_cell(p.cell, p.fit, p.val, config, out_dir, progress, bank)
            progress.emit("cell_done", cell=name, mode=p.cell.mode, threshold=result.threshold,
                          best_epoch=result.best_epoch)
        results[name] = result
        if info is not None:
            info["cells"][name] = result.to_json()
            write_run(out_dir, info)
    return results
