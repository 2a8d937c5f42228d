"""ROC AUC (weighted, for the point estimate and the bootstrap) and ROC curve points.

The AUC is a Mann–Whitney statistic on patient weights, so the same code
gives the point estimate (all weights 1) and every bootstrap resample.  The
curve is written out rather than taken from sklearn so that importing
:mod:`core.evaluate` stays light for the UI.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import sparse

from core.evaluate.metrics import as_binary, ratio_or_nan


def weighted_auc(weights: np.ndarray, y: np.ndarray, score: np.ndarray,
                 codes: np.ndarray) -> np.ndarray:
    """Mann–Whitney AUC (ties count ½) for each row of patient ``weights``.

    ``weights`` is (resamples × patients); an image weighs as much as its
    patient.  Scores are binned to their distinct levels so one sparse
    product per class gives every resample's class weight per level; the
    arrays are kept levels × resamples so the cumulative sum runs over
    contiguous rows.
    """
    n_pat = weights.shape[1]
    levels, level_of = np.unique(score, return_inverse=True)
    shape = (len(levels), n_pat)
    w_t = np.ascontiguousarray(weights.T)

    def per_level(mask: np.ndarray) -> np.ndarray:
        m = sparse.csr_matrix((np.ones(int(mask.sum())), (level_of[mask], codes[mask])), shape=shape)
        return np.asarray(m @ w_t)  # levels × resamples

    w_pos, w_neg = per_level(y == 1), per_level(y == 0)
    below = np.cumsum(w_neg, axis=0)
    below -= 0.5 * w_neg  # negatives strictly below, plus half of the ties
    num = np.einsum("kb,kb->b", w_pos, below)
    return ratio_or_nan(num, w_pos.sum(axis=0) * w_neg.sum(axis=0))


def roc_auc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = as_binary(y_true, "y_true")
    s = np.asarray(score, dtype=float)
    if y.size == 0:
        return math.nan
    codes = np.arange(y.size)
    return float(weighted_auc(np.ones((1, y.size)), y, s, codes)[0])


def roc_points(y_true: Any, score: Any) -> dict[str, list[float]]:
    """ROC curve vertices for plots, collinear points dropped.

    The same algorithm as sklearn's ``roc_curve(drop_intermediate=True)``,
    written out so that importing this module stays light for the UI.
    """
    y = as_binary(y_true, "y_true")
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": []}
    s = np.asarray(score, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_level = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last_of_level].astype(float)
    fps = 1.0 + last_of_level - tps
    if fps.size > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return {"fpr": [round(float(v), 6) for v in fps / fps[-1]],
            "tpr": [round(float(v), 6) for v in tps / tps[-1]]}
