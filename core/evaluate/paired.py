"""Paired comparison of two grids on the test images both scored.

Both grids score the same images, so "is ROI-aware better?" is a paired
question.  Two answers, both at the patient level because images of one
patient are not independent:

* **Paired bootstrap deltas**: every metric of both grids is computed on the
  *same* patient resamples (the ones the per-system CIs use), and the 95 %
  interval is taken over the per-resample difference.  A patient who makes
  both grids look good in one resample does so for both, so the interval of
  the difference is narrower than the two marginal intervals suggest.
* **Sign-flip test of the discordance**: per patient, d = (images only the
  second grid got right) − (images only the first got right).  Under "no
  difference" the two grids' answers are exchangeable within a patient, so
  each patient's d is as likely to be −d.  The exact two-sided p is the share
  of the 2^n sign assignments whose |Σ ±d| reaches the observed |Σ d|,
  counted by convolution (no sampling, no seed).  With one image per patient
  it equals the exact McNemar p; unlike McNemar it does not shrink when each
  patient contributes more correlated images.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.evaluate.bootstrap import count_metrics, in_chunks, percentile_ci
from core.evaluate.constants import DEFAULT_THRESHOLD
from core.evaluate.metrics import nan_to_none
from core.evaluate.roc import weighted_auc

DELTA_METRICS: tuple[str, ...] = ("roc_auc", "sensitivity", "specificity", "balanced_accuracy")
SIGN_FLIP_TEST = "exact patient-level sign-flip test of the per-patient discordance"


def sign_flip_p(net: Any) -> float:
    """Two-sided exact p of Σ d over all sign flips of the integer per-patient ``net`` d.

    The distribution of Σ ±d is built by convolving one patient at a time
    over the integer range [−Σ|d|, Σ|d|]; patients with d = 0 change nothing.
    """
    net = np.asarray(net, dtype=np.int64)
    d = np.abs(net[net != 0])
    observed = abs(int(net.sum()))
    if d.size == 0:
        return 1.0
    span = int(d.sum())
    dist = np.zeros(2 * span + 1)
    dist[span] = 1.0
    for step in d:
        nxt = np.zeros_like(dist)
        nxt[step:] += 0.5 * dist[:dist.size - step]
        nxt[:dist.size - step] += 0.5 * dist[step:]
        dist = nxt
    sums = np.arange(-span, span + 1)
    return float(min(1.0, dist[np.abs(sums) >= observed].sum()))


def clustered_discordance(correct_a: Any, correct_b: Any, codes: Any) -> dict[str, Any]:
    """The sign-flip test of two paired correct/incorrect vectors, images grouped by ``codes``.

    ``b`` and ``c`` count images as McNemar does (only ``a`` right, only
    ``b`` right); the test itself counts patients, and ``n_patients_net`` is
    how many carry a net difference (a patient with one image for each grid
    has none).
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    _, patient = np.unique(np.asarray(codes), return_inverse=True)
    only_a = np.bincount(patient, weights=a & ~b_).astype(np.int64)
    only_b = np.bincount(patient, weights=~a & b_).astype(np.int64)
    net = only_b - only_a
    return {"test": SIGN_FLIP_TEST, "n_pairs": int(a.size), "n_patients": int(net.size),
            "n_patients_net": int((net != 0).sum()), "b": int(only_a.sum()),
            "c": int(only_b.sum()), "p": sign_flip_p(net)}


def _auc_metric(weights: np.ndarray, y: np.ndarray, score: np.ndarray, codes: np.ndarray
                ) -> dict[str, np.ndarray]:
    return {"roc_auc": weighted_auc(weights, y, score, codes)}


def _difference(fn: Any, y: np.ndarray, x_a: np.ndarray, x_b: np.ndarray, codes: np.ndarray,
                boot: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Metric → (b minus a on all patients, b minus a per resample or None without resamples).

    ``fn(weights, y, x, codes)`` gives metric arrays per row of patient weights;
    both systems go through the same rows of ``boot``, which is what pairs them.
    """
    ones = np.ones((1, boot.shape[1]))
    point_a, point_b = fn(ones, y, x_a, codes), fn(ones, y, x_b, codes)
    if not boot.shape[0]:
        return {k: (point_b[k] - point_a[k], None) for k in point_a}
    boot_a, boot_b = in_chunks(fn, boot, y, x_a, codes), in_chunks(fn, boot, y, x_b, codes)
    return {k: (point_b[k] - point_a[k], boot_b[k] - boot_a[k]) for k in point_a}


def _delta_block(diffs: dict[str, tuple[np.ndarray, np.ndarray | None]]
                 ) -> dict[str, dict[str, float | None]]:
    """``delta_<metric>`` → ``{"value", "ci_low", "ci_high"}`` (percentile interval)."""
    block = {}
    for name in DELTA_METRICS:
        point, samples = diffs[name]
        lo, hi = percentile_ci(samples) if samples is not None else (math.nan, math.nan)
        block[f"delta_{name}"] = {"value": nan_to_none(point[0]),
                                  "ci_low": nan_to_none(lo), "ci_high": nan_to_none(hi)}
    return block


def paired_comparison(df: pd.DataFrame, mode_a: str, mode_b: str, patients: pd.Index,
                      boot: np.ndarray, difference: str) -> dict[str, Any] | None:
    """Deltas (at 0.5, and at the tuned thresholds under ``tuned``) and the sign-flip test
    of ``mode_b`` minus ``mode_a`` on the images both modes scored; None when one is absent.

    ``patients`` / ``boot`` are the patient index and resamples of the
    per-system intervals, so the deltas come from the very same resamples.
    """
    pair = df[df["mode"] == mode_a].merge(
        df[df["mode"] == mode_b][["image_path", "p_malignant", "threshold"]],
        on="image_path", suffixes=("_a", "_b"))
    if pair.empty:
        return None
    p_a, p_b = pair["p_malignant_a"].to_numpy(), pair["p_malignant_b"].to_numpy()
    calls = {"at_0.5": ((p_a >= DEFAULT_THRESHOLD).astype(int),
                        (p_b >= DEFAULT_THRESHOLD).astype(int)),
             "at_tuned": ((p_a >= pair["threshold_a"].to_numpy()).astype(int),
                          (p_b >= pair["threshold_b"].to_numpy()).astype(int))}
    return {"difference": difference, "n_images": int(len(pair)),
            "n_patients": int(pair["patient_id"].nunique()),
            **paired_calls(pair["label"].to_numpy(), patients.get_indexer(pair["patient_id"]),
                           (p_a, p_b), calls, boot)}


def paired_calls(y: np.ndarray, codes: np.ndarray, scores: tuple[np.ndarray, np.ndarray],
                 calls: dict[str, tuple[np.ndarray, np.ndarray]], boot: np.ndarray
                 ) -> dict[str, Any]:
    """Deltas and sign-flip tests of two paired systems given their scores and 0/1 calls.

    ``calls`` maps ``"at_0.5"`` / ``"at_tuned"`` to (calls of a, calls of b).
    Separate from :func:`paired_comparison` because a unit need not be one
    row with one threshold: a breast is called from its views' own calls
    (:mod:`core.evaluate.breast`).  ``codes`` index the columns of ``boot``.
    """
    result: dict[str, Any] = {}
    auc = _difference(_auc_metric, y, scores[0], scores[1], codes, boot)  # threshold-free: once
    tests = {}
    for at, (pred_a, pred_b) in calls.items():
        deltas = _delta_block({**_difference(count_metrics, y, pred_a, pred_b, codes, boot),
                               **auc})
        if at == "at_0.5":
            result.update(deltas)
        else:
            result["tuned"] = deltas
        tests[at] = clustered_discordance(pred_a == y, pred_b == y, codes)
    result["sign_flip"] = tests
    return result
