"""Threshold metrics from confusion counts, vectorised over any array shape.

One function (:func:`metrics_from_counts`) serves the point estimate and every
bootstrap resample, so the two can never disagree on a definition.  A ratio
whose denominator is zero is NaN (:func:`nan_to_none` turns it into None for
JSON).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def ratio_or_nan(num: Any, den: Any) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (the 0/0 convention)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.nan)


def metrics_from_counts(tp: Any, fn: Any, tn: Any, fp: Any) -> dict[str, np.ndarray]:
    """Threshold metrics from confusion counts; works element-wise on arrays.

    One function serves the point estimate and every bootstrap resample, so
    the two can never disagree on a definition.
    """
    tp, fn, tn, fp = (np.asarray(x, dtype=float) for x in (tp, fn, tn, fp))
    pos, neg = tp + fn, tn + fp
    sens = ratio_or_nan(tp, pos)
    spec = ratio_or_nan(tn, neg)
    f1_pos = ratio_or_nan(2 * tp, 2 * tp + fp + fn)
    f1_neg = ratio_or_nan(2 * tn, 2 * tn + fp + fn)
    # A class with support > 0 always has a defined F1, so NaN → 0 only
    # touches classes whose weight is zero.
    weighted = pos * np.nan_to_num(f1_pos) + neg * np.nan_to_num(f1_neg)
    # Harmonic mean of sensitivity and specificity; 0 when both are 0 (not 0/0).
    both_zero = (sens == 0) & (spec == 0)
    f_sens_spec = np.where(both_zero, 0.0, ratio_or_nan(2 * sens * spec, sens + spec))
    return {
        "sensitivity": sens,
        "specificity": spec,
        "f_sens_spec": f_sens_spec,
        "f1_malignant": f1_pos,
        "f1_weighted": ratio_or_nan(weighted, pos + neg),
        "accuracy": ratio_or_nan(tp + tn, pos + neg),
        "balanced_accuracy": (sens + spec) / 2,
    }


def as_binary(values: Any, name: str) -> np.ndarray:
    """0/1 labels or calls as int8; anything else is a caller's bug, named by ``name``."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    arr = arr.astype(float)
    if arr.size and not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold 0/1 values")
    return arr.astype(np.int8)


def confusion_counts(y_true: Any, y_pred: Any) -> dict[str, int]:
    """``{"tn", "fp", "fn", "tp"}`` with malignant (1) as the positive class."""
    y = as_binary(y_true, "y_true")
    p = as_binary(y_pred, "y_pred")
    if y.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    return {
        "tn": int(((y == 0) & (p == 0)).sum()),
        "fp": int(((y == 0) & (p == 1)).sum()),
        "fn": int(((y == 1) & (p == 0)).sum()),
        "tp": int(((y == 1) & (p == 1)).sum()),
    }


def confusion_matrix(y_true: Any, y_pred: Any) -> np.ndarray:
    """2×2 counts, rows = true (benign, malignant), columns = predicted."""
    c = confusion_counts(y_true, y_pred)
    return np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]], dtype=int)


def _threshold_metric(name: str, y_true: Any, y_pred: Any) -> float:
    c = confusion_counts(y_true, y_pred)
    return float(metrics_from_counts(c["tp"], c["fn"], c["tn"], c["fp"])[name])


def sensitivity(y_true: Any, y_pred: Any) -> float:
    """TP / (TP + FN); NaN without malignant images."""
    return _threshold_metric("sensitivity", y_true, y_pred)


def specificity(y_true: Any, y_pred: Any) -> float:
    """TN / (TN + FP); NaN without benign images."""
    return _threshold_metric("specificity", y_true, y_pred)


def f_sens_spec(y_true: Any, y_pred: Any) -> float:
    """The paper's F-score (:data:`~core.evaluate.constants.F_SCORE_DEFINITION`):
    2·sens·spec / (sens + spec); NaN unless both classes are present."""
    return _threshold_metric("f_sens_spec", y_true, y_pred)


def f1_malignant(y_true: Any, y_pred: Any) -> float:
    """Binary F1 of the malignant class; NaN when TP + FP + FN = 0."""
    return _threshold_metric("f1_malignant", y_true, y_pred)


def f1_weighted(y_true: Any, y_pred: Any) -> float:
    """Per-class F1 averaged with class-support weights (sklearn 'weighted')."""
    return _threshold_metric("f1_weighted", y_true, y_pred)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction correct; NaN on an empty set."""
    return _threshold_metric("accuracy", y_true, y_pred)


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """(sensitivity + specificity) / 2; NaN unless both classes are present."""
    return _threshold_metric("balanced_accuracy", y_true, y_pred)


def nan_to_none(x: float | None) -> float | None:
    """An undefined metric as None, so strict JSON stores it as null."""
    return None if x is None or not math.isfinite(float(x)) else float(x)
