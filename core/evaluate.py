"""Evaluation of a run's prediction table: metrics, CIs, McNemar, reference rows.

Evaluation reads ``predictions.csv`` (one row per test image and mode), never
a model, so it can be re-run, audited and tested without a GPU.

Why each piece is here (DESIGN.md, "What the paper does not say"):

* ROI presence alone is a strong label signal, so every comparison carries a
  ``roi_presence_only`` row (malignant iff an ROI exists) and a ``majority``
  row (always the majority class).
* The paper's "F-score" is ambiguous: both ``f1_malignant`` (binary F1 with
  malignant as the positive class) and ``f1_weighted`` (per-class F1 averaged
  with class-support weights) are reported; the paper-style table's F-score
  row is ``f1_weighted``.
* Test sets are small and images of one patient are correlated, so every
  metric has a patient-level bootstrap 95 % CI and baseline vs ROI-aware gets
  an exact McNemar test on the paired images.

Conventions: an image is called malignant when ``p_malignant >= threshold``.
A ratio whose denominator is zero (e.g. sensitivity with no malignant image)
is NaN, stored as JSON ``null`` and shown as "–".  Balanced accuracy is NaN
unless both classes are present.  ROC AUC is NaN with one class only.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from core.errors import CheckpointError
from core.grid import plan

METRIC_NAMES: tuple[str, ...] = (
    "sensitivity", "specificity", "f1_malignant", "f1_weighted",
    "accuracy", "balanced_accuracy", "roc_auc",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "image_path", "patient_id", "study_id", "view", "roi", "label", "mode", "cell",
    "fallback", "p_malignant", "threshold",
)
MODE_KEYS: dict[str, str] = {"baseline": "baseline", "roi": "roi_aware"}
REFERENCE_KEYS: tuple[str, ...] = ("roi_presence_only", "majority")
SYSTEM_KEYS: tuple[str, ...] = ("baseline", "roi_aware", *REFERENCE_KEYS)
DEFAULT_THRESHOLD = 0.5
F_SCORE_DEFINITION = "f1_weighted"
CI_LEVEL = 0.95
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
CV_FILE = "cv.json"
SYNTHETIC_BANNER = "SYNTHETIC PHANTOM DATA — not evidence about real patients"
_BOOT_CHUNK = 500  # resamples per block: bounds memory of the AUC arrays

# The paper's Tables 5–8 (Yoshitsugu et al., 2025), as printed.  Keys:
# dataset → arch → mode.  ``f_score`` is the paper's unlabelled F-score.
PAPER_REPORTED: dict[str, dict[str, dict[str, Any]]] = {
    "vindr": {
        "swin": {
            "table": 5,
            "baseline": {"sensitivity": 0.00, "specificity": 1.00, "f_score": 0.00, "accuracy": 0.85},
            "roi_aware": {"sensitivity": 0.93, "specificity": 0.87, "f_score": 0.90, "accuracy": 0.87},
        },
        "convnextv2": {
            "table": 6,
            "baseline": {"sensitivity": 0.00, "specificity": 1.00, "f_score": 0.00, "accuracy": 0.85},
            "roi_aware": {"sensitivity": 0.90, "specificity": 0.86, "f_score": 0.88, "accuracy": 0.87},
        },
    },
    "cdd_cesm": {
        "swin": {
            "table": 7,
            "baseline": {"sensitivity": 0.29, "specificity": 0.68, "f_score": 0.41, "accuracy": 0.48},
            "roi_aware": {"sensitivity": 0.65, "specificity": 0.65, "f_score": 0.65, "accuracy": 0.65},
        },
        "convnextv2": {
            "table": 8,
            "baseline": {"sensitivity": 0.65, "specificity": 0.65, "f_score": 0.65, "accuracy": 0.65},
            "roi_aware": {"sensitivity": 0.74, "specificity": 0.61, "f_score": 0.67, "accuracy": 0.68},
        },
    },
}


def paper_reported(dataset: str | None, arch: str | None) -> dict[str, Any] | None:
    """The paper's numbers for a run's dataset and architecture family, or None.

    Names are matched loosely ("VinDr-Mammo", "cdd-cesm", "swin_micro") because
    the UI wants the nearest published reference, not an exact replication.
    """
    ds = "".join(ch for ch in str(dataset or "").lower() if ch.isalnum())
    ar = str(arch or "").lower()
    ds_key = "vindr" if ds.startswith("vindr") else "cdd_cesm" if ds.startswith("cdd") else None
    arch_key = "swin" if ar.startswith("swin") else "convnextv2" if "convnext" in ar else None
    if ds_key is None or arch_key is None:
        return None
    return {"dataset": ds_key, "arch": arch_key, **PAPER_REPORTED[ds_key][arch_key]}


# --------------------------------------------------------------------------
# Metrics from confusion counts (vectorised: any array shape)
# --------------------------------------------------------------------------

def _ratio(num: Any, den: Any) -> np.ndarray:
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
    sens = _ratio(tp, pos)
    spec = _ratio(tn, neg)
    f1_pos = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = _ratio(2 * tn, 2 * tn + fp + fn)
    # A class with support > 0 always has a defined F1, so NaN → 0 only
    # touches classes whose weight is zero.
    weighted = pos * np.nan_to_num(f1_pos) + neg * np.nan_to_num(f1_neg)
    return {
        "sensitivity": sens,
        "specificity": spec,
        "f1_malignant": f1_pos,
        "f1_weighted": _ratio(weighted, pos + neg),
        "accuracy": _ratio(tp + tn, pos + neg),
        "balanced_accuracy": (sens + spec) / 2,
    }


def _as_binary(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    arr = arr.astype(float)
    if arr.size and not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold 0/1 values")
    return arr.astype(np.int8)


def confusion_counts(y_true: Any, y_pred: Any) -> dict[str, int]:
    """``{"tn", "fp", "fn", "tp"}`` with malignant (1) as the positive class."""
    y = _as_binary(y_true, "y_true")
    p = _as_binary(y_pred, "y_pred")
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


# --------------------------------------------------------------------------
# Weighted ROC AUC: the same code for the point estimate and the bootstrap
# --------------------------------------------------------------------------

def _auc_from_weights(weights: np.ndarray, y: np.ndarray, score: np.ndarray,
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
    return _ratio(num, w_pos.sum(axis=0) * w_neg.sum(axis=0))


def roc_auc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = _as_binary(y_true, "y_true")
    s = np.asarray(score, dtype=float)
    if y.size == 0:
        return math.nan
    codes = np.arange(y.size)
    return float(_auc_from_weights(np.ones((1, y.size)), y, s, codes)[0])


def roc_points(y_true: Any, score: Any) -> dict[str, list[float]]:
    """ROC curve vertices for plots, collinear points dropped.

    The same algorithm as sklearn's ``roc_curve(drop_intermediate=True)``,
    written out so that importing this module stays light for the UI.
    """
    y = _as_binary(y_true, "y_true")
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


# --------------------------------------------------------------------------
# Patient-level bootstrap
# --------------------------------------------------------------------------

def patient_bootstrap_weights(n_patients: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """How often each patient is drawn in each resample: (n_boot × n_patients).

    Patients, not images, are drawn with replacement, so all images of one
    patient enter a resample together; images of a patient are correlated and
    image-level resampling would make the intervals too narrow.
    """
    if n_patients == 0 or n_boot == 0:
        return np.zeros((n_boot, n_patients))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_patients, np.full(n_patients, 1.0 / n_patients), size=n_boot).astype(float)


def _count_metrics(weights: np.ndarray, y: np.ndarray, pred: np.ndarray,
                   codes: np.ndarray) -> dict[str, np.ndarray]:
    """Threshold metrics for each row of patient ``weights``."""
    n_pat = weights.shape[1]
    per_patient = np.stack([
        np.bincount(codes, weights=(y == 1) & (pred == 1), minlength=n_pat),
        np.bincount(codes, weights=(y == 1) & (pred == 0), minlength=n_pat),
        np.bincount(codes, weights=(y == 0) & (pred == 0), minlength=n_pat),
        np.bincount(codes, weights=(y == 0) & (pred == 1), minlength=n_pat),
    ], axis=1)
    tp, fn, tn, fp = (weights @ per_patient).T
    return metrics_from_counts(tp, fn, tn, fp)


def _chunked(fn: Any, weights: np.ndarray, *args: Any) -> Any:
    """Apply ``fn`` to blocks of resamples so memory stays bounded."""
    parts = [fn(weights[i:i + _BOOT_CHUNK], *args)
             for i in range(0, max(weights.shape[0], 1), _BOOT_CHUNK)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def auc_samples(y: np.ndarray, score: np.ndarray | None, codes: np.ndarray,
                boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point AUC as a 1-array, bootstrap AUCs); NaN arrays without a score.

    Separate from the threshold metrics because AUC does not depend on the
    threshold: it is computed once per grid and shared by both tables.
    """
    n_pat = boot.shape[1]
    if score is None:
        return np.array([np.nan]), np.full(boot.shape[0], np.nan)
    point = _auc_from_weights(np.ones((1, n_pat)), y, score, codes)
    return point, _chunked(_auc_from_weights, boot, y, score, codes)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    """Percentile-method 95 % interval, ignoring resamples where the metric is NaN.

    The percentile method does not guarantee the interval contains the point
    estimate (e.g. a metric near 0 or 1 with few patients); on ordinary data
    it does.  All-NaN resamples give a NaN interval.
    """
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(finite, [alpha, 100 - alpha])
    return float(lo), float(hi)


def metric_block(y: np.ndarray, pred: np.ndarray, codes: np.ndarray, boot: np.ndarray,
                 auc: tuple[np.ndarray, np.ndarray]) -> dict[str, dict[str, float | None]]:
    """Metric name → ``{"value", "ci_low", "ci_high"}`` for one system.

    ``codes`` maps each image to its patient's column in ``boot``; ``auc`` is
    :func:`auc_samples` for the same rows.
    """
    n_pat = boot.shape[1]
    point = _count_metrics(np.ones((1, n_pat)), y, pred, codes)
    point["roc_auc"] = auc[0]
    resampled = _chunked(_count_metrics, boot, y, pred, codes) if boot.shape[0] else None
    if resampled is not None:
        resampled["roc_auc"] = auc[1]
    block = {}
    for name in METRIC_NAMES:
        lo, hi = _percentile_ci(resampled[name]) if resampled is not None else (math.nan, math.nan)
        block[name] = {"value": _nan_to_none(point[name][0]),
                       "ci_low": _nan_to_none(lo), "ci_high": _nan_to_none(hi)}
    return block


# --------------------------------------------------------------------------
# McNemar
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# The prediction table
# --------------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_MODE_ALIASES = {"baseline": "baseline", "roi": "roi", "roi_aware": "roi", "roi-aware": "roi"}


def _parse_bool(series: pd.Series, column: str, source: Any) -> pd.Series:
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    bad = sorted(set(text[~text.isin(_TRUE | _FALSE)]))
    if bad:
        raise CheckpointError(f"column {column!r} has non-boolean value(s) {bad[:5]}", source)
    return text.isin(_TRUE)


def _parse_label(series: pd.Series, source: Any) -> pd.Series:
    text = series.astype(str).str.strip().str.lower()
    mapped = text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "benign": 0, "malignant": 1,
                       "false": 0, "true": 1})
    if mapped.isna().any():
        bad = sorted(set(text[mapped.isna()]))
        raise CheckpointError(f"column 'label' has value(s) {bad[:5]}; expected 0/1", source)
    return mapped.astype(int)


def _parse_float(series: pd.Series, column: str, source: Any) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    if values.isna().any():
        raise CheckpointError(f"column {column!r} has missing or non-numeric values", source)
    return values.astype(float)


def clean_predictions(df: pd.DataFrame, source: Any = None) -> pd.DataFrame:
    """Validate and normalise a long prediction table; errors name ``source``."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CheckpointError(f"missing column(s): {', '.join(missing)}", source)
    df = df.copy()
    for col in ("image_path", "patient_id", "study_id", "view", "cell"):
        df[col] = df[col].astype(str).str.strip()
    df["mode"] = df["mode"].astype(str).str.strip().str.lower().map(_MODE_ALIASES)
    if df["mode"].isna().any():
        raise CheckpointError("column 'mode' must be 'baseline' or 'roi'", source)
    df["roi"] = _parse_bool(df["roi"], "roi", source)
    df["fallback"] = _parse_bool(df["fallback"], "fallback", source)
    df["label"] = _parse_label(df["label"], source)
    df["p_malignant"] = _parse_float(df["p_malignant"], "p_malignant", source)
    df["threshold"] = _parse_float(df["threshold"], "threshold", source)
    dup = df.duplicated(["image_path", "mode"])
    if dup.any():
        raise CheckpointError(
            f"{int(dup.sum())} duplicate (image_path, mode) row(s), e.g. "
            f"{df.loc[dup, 'image_path'].iloc[0]!r}", source)
    per_image = df.groupby("image_path")[["label", "roi", "patient_id"]].nunique()
    clash = per_image[(per_image > 1).any(axis=1)]
    if len(clash):
        raise CheckpointError(
            f"image {clash.index[0]!r} has different label/roi/patient in different modes", source)
    return df


def _majority(train_counts: Mapping[str, Any] | None, images: pd.DataFrame) -> tuple[int, str]:
    """Majority class (0/1) and where it came from; ties go to benign."""
    if train_counts:
        benign, malignant = int(train_counts.get("benign", 0)), int(train_counts.get("malignant", 0))
        return int(malignant > benign), "train"
    return int(images["label"].sum() > (len(images) - images["label"].sum())), "test"


def _correct(rows: pd.DataFrame, threshold: Any) -> pd.Series:
    pred = (rows["p_malignant"].to_numpy() >= threshold).astype(int)
    return pd.Series(pred == rows["label"].to_numpy(), index=rows["image_path"].to_numpy())


def _mcnemar_between(df: pd.DataFrame, tuned: bool) -> dict[str, Any] | None:
    """Exact McNemar of baseline vs ROI-aware, pairing rows by image_path."""
    base = df[df["mode"] == "baseline"]
    roi = df[df["mode"] == "roi"]
    if base.empty or roi.empty:
        return None
    a = _correct(base, base["threshold"].to_numpy() if tuned else DEFAULT_THRESHOLD)
    b = _correct(roi, roi["threshold"].to_numpy() if tuned else DEFAULT_THRESHOLD)
    common = a.index.intersection(b.index)
    return paired_mcnemar(a.loc[common].to_numpy(), b.loc[common].to_numpy())


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
            "sensitivity": _nan_to_none(m["sensitivity"]),
            "specificity": _nan_to_none(m["specificity"]),
            "accuracy": _nan_to_none(m["accuracy"]),
            "auc": _nan_to_none(roc_auc(y, g["p_malignant"].to_numpy())),
        }
    return out


def _empty_block() -> dict[str, dict[str, None]]:
    return {n: {"value": None, "ci_low": None, "ci_high": None} for n in METRIC_NAMES}


def evaluate_predictions(df: pd.DataFrame, train_counts: Mapping[str, Any] | None = None,
                         n_boot: int = 1000, seed: int = 0, *, source: Any = None) -> dict[str, Any]:
    """Every number the paper-style table, the UI and metrics.json need.

    Top-level ``baseline`` / ``roi_aware`` / ``roi_presence_only`` /
    ``majority`` are at threshold 0.5; ``tuned`` holds the two grids at each
    row's validation-tuned threshold.  All systems share one set of patient
    resamples, so their intervals are comparable.  NaN is returned as None.
    """
    df = clean_predictions(df, source)
    images = df.drop_duplicates("image_path").reset_index(drop=True)
    patients = pd.Index(pd.unique(images["patient_id"]))
    boot = patient_bootstrap_weights(len(patients), n_boot, seed)
    majority_label, majority_from = _majority(train_counts, images)

    result: dict[str, Any] = {
        "n_images": int(len(images)), "n_patients": int(len(patients)),
        "n_malignant": int(images["label"].sum()),
        "f_score_definition": F_SCORE_DEFINITION,
        "bootstrap": {"n_boot": int(n_boot), "seed": int(seed), "level": CI_LEVEL,
                      "unit": "patient", "method": "percentile"},
        "majority_class": {"label": "malignant" if majority_label else "benign",
                           "source": majority_from},
        "tuned": {}, "confusion": {}, "per_cell": {}, "roc": {},
    }

    def add_system(key: str, rows: pd.DataFrame, pred_05: np.ndarray, pred_tuned: np.ndarray,
                   score: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Blocks at 0.5 and at the tuned threshold; fills confusion and ROC.

        Reference rows have no threshold, so their tuned block is skipped.
        """
        y = rows["label"].to_numpy()
        result["confusion"][key] = {"at_0.5": confusion_counts(y, pred_05),
                                    "at_tuned": confusion_counts(y, pred_tuned)}
        result["roc"][key] = roc_points(y, score) if score is not None else {"fpr": [], "tpr": []}
        if rows.empty:
            return _empty_block(), _empty_block()
        codes = patients.get_indexer(rows["patient_id"])
        auc = auc_samples(y, score, codes, boot)
        tuned = key in MODE_KEYS.values()
        return (metric_block(y, pred_05, codes, boot, auc),
                metric_block(y, pred_tuned, codes, boot, auc) if tuned else None)

    for mode, key in MODE_KEYS.items():
        rows = df[df["mode"] == mode]
        p = rows["p_malignant"].to_numpy()
        pred_05 = (p >= DEFAULT_THRESHOLD).astype(int)
        pred_t = (p >= rows["threshold"].to_numpy()).astype(int)
        result[key], result["tuned"][key] = add_system(key, rows, pred_05, pred_t, p)
        result["per_cell"][key] = per_cell_metrics(rows, mode)
        result[f"n_images_{key}"] = int(len(rows))

    roi_pred = images["roi"].to_numpy().astype(int)
    result["roi_presence_only"], _ = add_system("roi_presence_only", images, roi_pred, roi_pred,
                                                roi_pred.astype(float))
    maj_pred = np.full(len(images), majority_label, dtype=int)
    result["majority"], _ = add_system("majority", images, maj_pred, maj_pred, None)

    result["mcnemar"] = {"at_0.5": _mcnemar_between(df, tuned=False),
                         "at_tuned": _mcnemar_between(df, tuned=True)}
    at05 = result["mcnemar"]["at_0.5"]
    result["mcnemar_p"] = at05["p"] if at05 else None
    return result


# --------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"unreadable JSON ({err})", path) from None


def read_predictions(path: str | Path) -> pd.DataFrame:
    """The raw prediction table; a missing or unreadable file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("prediction table not found (has the run finished?)", path)
    try:
        df = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CheckpointError(f"unreadable prediction table ({err})", path) from None
    if df.empty:
        raise CheckpointError("prediction table has no rows", path)
    return df


def _is_count(name: str) -> bool:
    """Fold bookkeeping (fold index, n, n_malignant, n_unserved), not a metric."""
    return name in ("fold", "n") or name.startswith("n_")


def summarize_cv(cv: Any, source: Any = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean ± sd (n − 1) per mode and metric of per-fold cross-validation results.

    Accepts ``{mode: [fold_metrics, ...]}`` or a list of fold dicts that each
    carry a ``mode`` key; non-numeric fields (and None, i.e. an undefined
    metric in that fold) and fold bookkeeping (``fold``, ``n``, ``n_*``) are
    skipped.
    """
    if isinstance(cv, Mapping) and isinstance(cv.get("folds"), list):
        cv = cv["folds"]
    if isinstance(cv, list):
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for fold in cv:
            if not isinstance(fold, Mapping) or "mode" not in fold:
                raise CheckpointError("cross-validation folds must be objects with a 'mode'", source)
            grouped.setdefault(str(fold["mode"]), []).append(fold)
        cv = grouped
    if not isinstance(cv, Mapping):
        raise CheckpointError("expected {mode: [per-fold metrics]}", source)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for mode, folds in cv.items():
        if not isinstance(folds, list) or not all(isinstance(f, Mapping) for f in folds):
            raise CheckpointError(f"mode {mode!r}: expected a list of per-fold objects", source)
        key = MODE_KEYS.get(_MODE_ALIASES.get(str(mode).lower(), ""), str(mode))
        metrics: dict[str, dict[str, Any]] = {}
        names = [k for f in folds for k, v in f.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not _is_count(k)]
        for name in dict.fromkeys(names):
            vals = np.array([float(f[name]) for f in folds if isinstance(f.get(name), (int, float))
                             and not isinstance(f.get(name), bool)])
            vals = vals[np.isfinite(vals)]
            metrics[name] = {"mean": _nan_to_none(vals.mean()) if vals.size else None,
                             "sd": _nan_to_none(vals.std(ddof=1)) if vals.size > 1 else None,
                             "n_folds": int(vals.size)}
        summary[key] = metrics
    return summary


def _run_header(run: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields of run.json (dataset, arch, img_size, …) for headers."""
    return {k: v for k, v in run.items() if isinstance(v, (str, int, float, bool)) or v is None}


def _jsonable(obj: Any) -> Any:
    """Plain JSON types only; NaN and infinities become null."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _nan_to_none(float(obj))
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write JSON so readers see the old file or the new one, never half of one."""
    path = Path(path)
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def evaluate_run(run_dir: str | Path, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Evaluate ``checkpoints/<name>/predictions.csv`` and write ``metrics.json``.

    ``run.json`` (optional) supplies the header and ``train_counts`` for the
    majority row; ``cv.json`` (optional) is summarised as mean ± sd.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError("run folder not found", run_dir)
    pred_path = run_dir / PREDICTIONS_FILE
    df = read_predictions(pred_path)
    run = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    if not isinstance(run, Mapping):
        raise CheckpointError("expected a JSON object", run_dir / RUN_FILE)
    train_counts = run.get("train_counts")
    if train_counts is not None and not isinstance(train_counts, Mapping):
        raise CheckpointError("'train_counts' must be {\"benign\": n, \"malignant\": m}",
                              run_dir / RUN_FILE)
    result = evaluate_predictions(df, train_counts, n_boot=n_boot, seed=seed, source=pred_path)
    result["run"] = {"name": run_dir.name, **_run_header(run)}
    paper = paper_reported(run.get("dataset"), run.get("arch"))
    if paper is not None:
        result["paper_reported"] = paper
    cv_path = run_dir / CV_FILE
    if cv_path.is_file():
        result["cv"] = summarize_cv(_read_json(cv_path), cv_path)
    result = _jsonable(result)
    atomic_write_json(run_dir / METRICS_FILE, result)
    return result


# --------------------------------------------------------------------------
# Text tables
# --------------------------------------------------------------------------

TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
    ("F-score (f1_weighted)", "f1_weighted"),
    ("F1 malignant (f1_malignant)", "f1_malignant"),
    ("Accuracy", "accuracy"),
    ("Balanced accuracy", "balanced_accuracy"),
    ("ROC AUC", "roc_auc"),
)
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("baseline", "without ROI consideration (baseline)"),
    ("roi_aware", "with ROI consideration (ROI-aware)"),
    ("roi_presence_only", "ROI presence only"),
    ("majority", "majority class"),
)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def format_cell(entry: Mapping[str, float | None]) -> str:
    """``0.87 [0.84, 0.90]``; missing values are "–"."""
    if entry.get("value") is None:
        return "–"
    return f"{_fmt(entry['value'])} [{_fmt(entry.get('ci_low'))}, {_fmt(entry.get('ci_high'))}]"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _header_lines(result: Mapping[str, Any]) -> list[str]:
    run = result.get("run") or {}
    lines = []
    if run.get("synthetic"):
        lines.append(SYNTHETIC_BANNER)
    fields = [f"{k} {run[k]}" for k in ("dataset", "arch", "img_size", "epochs", "seed") if k in run]
    title = f"Run {run['name']}" if "name" in run else "Evaluation"
    lines.append(title + (f" — {', '.join(fields)}" if fields else ""))
    lines.append(f"{result['n_images']} test images, {result['n_patients']} patients, "
                 f"{result['n_malignant']} malignant")
    return lines


def format_paper_table(result: Mapping[str, Any], threshold: str = "0.5",
                       header: bool = True) -> str:
    """The paper's Tables 5–8 layout with CIs, reference columns and McNemar.

    ``threshold`` is "0.5" (the top-level numbers) or "tuned" (each cell's
    validation-tuned threshold; the reference columns do not depend on it).
    """
    if threshold not in ("0.5", "tuned"):
        raise ValueError("threshold must be '0.5' or 'tuned'")
    systems = {k: (result["tuned"][k] if threshold == "tuned" and k in MODE_KEYS.values()
                   else result[k]) for k, _ in TABLE_COLUMNS}
    label_w = max(len(r[0]) for r in TABLE_ROWS)
    widths = [max(len(title), 17) for _, title in TABLE_COLUMNS]
    lines = _header_lines(result) if header else []
    at = "p ≥ 0.5" if threshold == "0.5" else "p ≥ validation-tuned threshold of the serving cell"
    lines.append(f"Threshold: {at}")
    head = " " * label_w + "  " + "  ".join(t.ljust(w) for (_, t), w in zip(TABLE_COLUMNS, widths))
    lines += [head, "-" * len(head)]
    for label, metric in TABLE_ROWS:
        cells = [format_cell(systems[k][metric]).ljust(w) for (k, _), w in zip(TABLE_COLUMNS, widths)]
        lines.append(label.ljust(label_w) + "  " + "  ".join(cells).rstrip())
    mc = result["mcnemar"]["at_0.5" if threshold == "0.5" else "at_tuned"]
    if mc:
        lines.append(f"McNemar exact, baseline vs ROI-aware: p = {_fmt_p(mc['p'])} "
                     f"({mc['n_pairs']} paired images; only baseline right {mc['b']}, "
                     f"only ROI-aware right {mc['c']})")
    else:
        lines.append("McNemar exact, baseline vs ROI-aware: – (needs both grids)")
    lines += _footnote(result)
    return "\n".join(lines)


def _footnote(result: Mapping[str, Any]) -> list[str]:
    boot = result["bootstrap"]
    maj = result["majority_class"]
    note = (
        f"Note: 95 % CI = patient-level bootstrap, percentile method, {boot['n_boot']} resamples, "
        f"seed {boot['seed']} (a percentile CI can exclude the point estimate in degenerate cases). "
        "F-score = support-weighted F1 over both classes (f1_weighted), the reading that fits the "
        "paper's 0.90 at sensitivity 0.93 / specificity 0.87; the paper's baseline 0.00 fits the "
        "binary malignant F1 (f1_malignant) instead. ROI presence only = malignant iff an ROI "
        f"exists. Majority class = {maj['label']} (from the {maj['source']} set). "
        "'–' = undefined (0/0 or one class only)."
    )
    lines = textwrap.wrap(note, width=110)
    paper = result.get("paper_reported")
    if paper:
        def line(mode: str) -> str:
            m = paper[mode]
            return (f"sens {m['sensitivity']:.2f} spec {m['specificity']:.2f} "
                    f"F {m['f_score']:.2f} acc {m['accuracy']:.2f}")
        lines.append(f"Paper Table {paper['table']} ({paper['arch']} / {paper['dataset']}): "
                     f"baseline {line('baseline')}; ROI-aware {line('roi_aware')}.")
    return lines


def format_per_cell(result: Mapping[str, Any]) -> str:
    """One line per cell and grid: n, malignant, fallbacks, metrics at 0.5."""
    lines = [f"{'grid':<10} {'cell':<10} {'n':>5} {'malig':>6} {'fallb':>6} "
             f"{'sens':>5} {'spec':>5} {'acc':>5} {'auc':>5}"]
    for key, cells in result["per_cell"].items():
        for name, c in cells.items():
            lines.append(f"{key:<10} {name:<10} {c['n']:>5} {c['n_malignant']:>6} "
                         f"{c['n_fallback']:>6} {_fmt(c['sensitivity']):>5} "
                         f"{_fmt(c['specificity']):>5} {_fmt(c['accuracy']):>5} {_fmt(c['auc']):>5}")
    return "\n".join(lines)


def format_cv(result: Mapping[str, Any]) -> str:
    """Cross-validation summary lines, mean ± sd per mode and metric."""
    lines = ["Cross-validation (mean ± sd over folds):"]
    for key, metrics in (result.get("cv") or {}).items():
        parts = [f"{name} {_fmt(m['mean'])} ± {_fmt(m['sd'])}" for name, m in metrics.items()]
        lines.append(f"  {key}: " + "; ".join(parts))
    return "\n".join(lines)


def format_report(result: Mapping[str, Any]) -> str:
    """Everything the command line prints: both tables, per-cell, CV."""
    parts = [format_paper_table(result, "0.5"), "", format_paper_table(result, "tuned", header=False),
             "", "Per cell (threshold 0.5):", format_per_cell(result)]
    if result.get("cv"):
        parts += ["", format_cv(result)]
    return "\n".join(parts)
