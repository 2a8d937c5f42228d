"""Exact McNemar test: baseline vs ROI-aware on the images both grids scored.

The two grids score the same test images, so their comparison is a paired
one; the exact binomial form is used because discordant pairs are few.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from core.evaluate.constants import DEFAULT_THRESHOLD


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: binomial test of b vs c discordant pairs at ½.

    ``b`` = pairs only the first system got right, ``c`` = only the second.
    No discordant pair gives p = 1 (no evidence of a difference).
    """
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    # Exact integer arithmetic: no scipy import, no underflow for large n.
    tail = sum(math.comb(n, i) for i in range(min(int(b), int(c)) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))


def paired_mcnemar(correct_a: Any, correct_b: Any) -> dict[str, float | int]:
    """Exact McNemar on two paired correct/incorrect vectors."""
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    return {"n_pairs": int(a.size), "b": b, "c": c, "p": mcnemar_exact(b, c)}


def correct_calls(rows: pd.DataFrame, threshold: Any) -> pd.Series:
    """Whether each image was called right, indexed by image_path so two grids pair by image."""
    pred = (rows["p_malignant"].to_numpy() >= threshold).astype(int)
    return pd.Series(pred == rows["label"].to_numpy(), index=rows["image_path"].to_numpy())


def mcnemar_between(df: pd.DataFrame, tuned: bool) -> dict[str, Any] | None:
    """Exact McNemar of baseline vs ROI-aware, pairing rows by image_path."""
    base = df[df["mode"] == "baseline"]
    roi = df[df["mode"] == "roi"]
    if base.empty or roi.empty:
        return None
    a = correct_calls(base, base["threshold"].to_numpy() if tuned else DEFAULT_THRESHOLD)
    b = correct_calls(roi, roi["threshold"].to_numpy() if tuned else DEFAULT_THRESHOLD)
    common = a.index.intersection(b.index)
    return paired_mcnemar(a.loc[common].to_numpy(), b.loc[common].to_numpy())
