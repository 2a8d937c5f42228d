"""Per-cell metrics at threshold 0.5, cells in grid order.

A grid's overall numbers can hide one weak cell; this breakdown (with each
cell's fallback count and thresholds) is what the UI and the CLI show per cell.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.evaluate.constants import DEFAULT_THRESHOLD
from core.evaluate.metrics import confusion_counts, metrics_from_counts, nan_to_none
from core.evaluate.roc import roc_auc
from core.grid import plan


def _cell_order(mode: str, cells: Sequence[str]) -> list[str]:
    planned = [c.name for c in plan(mode)]  # type: ignore[arg-type]
    return [c for c in planned if c in cells] + sorted(set(cells) - set(planned))


def per_cell_metrics(rows: pd.DataFrame, mode: str) -> dict[str, dict[str, Any]]:
    """Cell name → n, n_malignant, n_fallback, thresholds and metrics at 0.5.

    Cells are listed in grid order so the UI shows them consistently.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in _cell_order(mode, list(rows["cell"].unique())):
        g = rows[rows["cell"] == name]
        y = g["label"].to_numpy()
        pred = (g["p_malignant"].to_numpy() >= DEFAULT_THRESHOLD).astype(int)
        c = confusion_counts(y, pred)
        m = metrics_from_counts(c["tp"], c["fn"], c["tn"], c["fp"])
        out[name] = {
            "n": int(len(g)), "n_malignant": int(y.sum()), "n_fallback": int(g["fallback"].sum()),
            "thresholds": sorted(float(t) for t in g["threshold"].unique()),
            "sensitivity": nan_to_none(m["sensitivity"]),
            "specificity": nan_to_none(m["specificity"]),
            "accuracy": nan_to_none(m["accuracy"]),
            "auc": nan_to_none(roc_auc(y, g["p_malignant"].to_numpy())),
        }
    return out
