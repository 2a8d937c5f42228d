"""A dataset's composition, counted the way the paper's Tables 1–4 count it.

The Data page, the command line and the phantom's round-trip test all compare
the same plain dict, so it holds only built-in ints and strings (JSON-ready)
and every key is present even when its count is zero.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from core.datasets.manifest import LABELS, SPLITS, roi_flags
from core.grid import VIEWS

ROI_KEYS: tuple[str, ...] = ("with", "without")


def describe(df: pd.DataFrame) -> dict[str, Any]:
    """``{"images", "split": {train|test: {benign, malignant}}, "roi": {with|without: ...},
    "views": {RCC, LCC, RMLO, LMLO}}`` of a finalized manifest."""
    roi = roi_flags(df).map({True: "with", False: "without"})
    views = df["view_name"] if "view_name" in df.columns else df["laterality"] + df["view"]
    return {
        "images": int(len(df)),
        "split": _cross(df["split"], df["label"], SPLITS),
        "roi": _cross(roi, df["label"], ROI_KEYS),
        "views": {v: int((views == v).sum()) for v in VIEWS},
    }


def _cross(rows: pd.Series, labels: pd.Series, keys: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {k: {lab: int(((rows == k) & (labels == lab)).sum()) for lab in LABELS} for k in keys}


def tables(summary: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The two paper tables (split × label, ROI × label) with totals, for display."""
    split = _table(summary["split"], {"train": "training", "test": "testing"})
    roi = _table(summary["roi"], {"with": "with ROIs", "without": "without ROIs"})
    views = pd.DataFrame([summary["views"]], index=["images"])
    return {"split": split, "roi": roi, "views": views}


def _table(counts: dict[str, dict[str, int]], columns: dict[str, str]) -> pd.DataFrame:
    rows = ("malignant", "benign")  # the paper lists malignant first
    table = pd.DataFrame({columns[k]: [counts[k][r] for r in rows] for k in columns},
                         index=list(rows))
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table.astype(int)


def render_text(summary: dict[str, Any]) -> str:
    """Plain-text tables like the paper's Tables 1–4 (plus the view counts)."""
    t = tables(summary)
    parts = [
        f"Images: {summary['images']}",
        "Training / testing split\n" + t["split"].to_string(),
        "Presence of ROIs\n" + t["roi"].to_string(),
        "Views\n" + t["views"].to_string(),
    ]
    return "\n\n".join(parts) + "\n"
