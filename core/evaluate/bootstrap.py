"""Patient-level bootstrap: resample weights, resampled metrics, percentile CIs.

Test sets are small and images of one patient are correlated, so patients,
not images, are resampled; every metric of one system gets a 95 % interval
from the same resamples (:func:`metric_block`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.evaluate.constants import CI_LEVEL, METRIC_NAMES
from core.evaluate.metrics import metrics_from_counts, nan_to_none
from core.evaluate.roc import weighted_auc

_BOOT_CHUNK = 500  # resamples per block: bounds memory of the AUC arrays


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


def count_metrics(weights: np.ndarray, y: np.ndarray, pred: np.ndarray,
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


def in_chunks(fn: Any, weights: np.ndarray, *args: Any) -> Any:
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
    point = weighted_auc(np.ones((1, n_pat)), y, score, codes)
    return point, in_chunks(weighted_auc, boot, y, score, codes)


def percentile_ci(samples: np.ndarray) -> tuple[float, float]:
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
    point = count_metrics(np.ones((1, n_pat)), y, pred, codes)
    point["roc_auc"] = auc[0]
    resampled = in_chunks(count_metrics, boot, y, pred, codes) if boot.shape[0] else None
    if resampled is not None:
        resampled["roc_auc"] = auc[1]
    block = {}
    for name in METRIC_NAMES:
        lo, hi = percentile_ci(resampled[name]) if resampled is not None else (math.nan, math.nan)
        block[name] = {"value": nan_to_none(point[name][0]),
                       "ci_low": nan_to_none(lo), "ci_high": nan_to_none(hi)}
    return block
