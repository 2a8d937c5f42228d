"""Calibration: temperature scaling, ECE, Brier score and the reliability curve.

A clinician reads "37 %" as "about a third of such images are cancers".  A
network trained with cross-entropy on few images is usually over-confident,
so its raw sigmoid is not that.  Temperature scaling (Guo et al., 2017)
divides each cell's logit by one scalar ``T > 0`` fitted on the cell's
validation carve: it changes how confident the numbers are, never their
order, so ROC AUC and the images a threshold separates stay as they were.

All functions here are pure numpy on probabilities / logits and labels, so
evaluation stays a function of the prediction table (never of a model).

Conventions:

* **ECE** is the expected calibration error of P(malignant) with
  :data:`ECE_BINS` = 10 equal-width bins over [0, 1] (bin ``k`` holds
  ``k/10 <= p < (k+1)/10``, the last bin includes 1): the image-weighted mean
  of ``|fraction malignant − mean p|`` over the non-empty bins.  It is the
  reliability diagram's average gap, on the class-1 probability that the app
  shows (not the "top-label" confidence ``max(p, 1 − p)``).
* **Brier score** is the mean of ``(p − y)²``: 0 is perfect, 0.25 is what a
  constant 0.5 scores.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

ECE_BINS = 10
T_BOUNDS: tuple[float, float] = (0.05, 20.0)
"""The fitted temperature's range: a separable validation carve would drive T
towards 0 (infinitely confident) and a useless model towards infinity; both
ends are clipped here rather than stored as 0 or inf."""


def _arrays(p: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities but {y.size} labels")
    return p, y


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(int), bins - 1)


def reliability_curve(p: Any, y: Any, bins: int = ECE_BINS) -> dict[str, list[float] | list[int]]:
    """Per non-empty equal-width bin: mean P(malignant), fraction malignant and image count.

    What the reliability diagram plots: a calibrated model's points lie on the
    diagonal.  ``bin_low`` is each bin's left edge, so empty bins can be told apart.
    """
    p, y = _arrays(p, y)
    idx = _bin_index(p, bins)
    out: dict[str, list[Any]] = {"bin_low": [], "mean_p": [], "frac_malignant": [], "n": []}
    for k in range(bins):
        members = idx == k
        n = int(members.sum())
        if n == 0:
            continue
        out["bin_low"].append(k / bins)
        out["mean_p"].append(float(p[members].mean()))
        out["frac_malignant"].append(float(y[members].mean()))
        out["n"].append(n)
    return out


def expected_calibration_error(p: Any, y: Any, bins: int = ECE_BINS) -> float:
    """ECE with ``bins`` equal-width bins (see the module docstring); NaN with no image."""
    p, y = _arrays(p, y)
    if p.size == 0:
        return math.nan
    curve = reliability_curve(p, y, bins)
    gaps = np.abs(np.subtract(curve["frac_malignant"], curve["mean_p"]))
    return float(np.dot(gaps, curve["n"]) / p.size)


def brier_score(p: Any, y: Any) -> float:
    """Mean squared difference between P(malignant) and the 0/1 label; NaN with no image."""
    p, y = _arrays(p, y)
    return float(np.mean((p - y) ** 2)) if p.size else math.nan


def scaled_probability(logits: Any, temperature: float) -> np.ndarray:
    """``sigmoid(logit / T)`` in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    return np.exp(-np.logaddexp(0.0, -z))


PRIOR_SD = 0.5
"""Standard deviation of the log-normal prior on ``T`` (centred on 1, i.e. no change).

A cell's validation carve holds a dozen images with one or two cancers, often
perfectly separated; there the likelihood alone drives ``T`` to its lower
bound (probabilities of 0 and 1) and the served figures become wildly
over-confident on new images.  The prior keeps ``T`` near 1 unless the
evidence is strong: with thousands of images it is negligible.
"""


def _nll(log_t: float, z: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of ``sigmoid(z / exp(log_t))`` (unweighted), plus the
    prior's share per image (:data:`PRIOR_SD`)."""
    s = z * math.exp(-log_t)
    prior = log_t ** 2 / (2 * PRIOR_SD ** 2)
    return float(np.mean(np.logaddexp(0.0, s) - y * s) + prior / z.size)


def fit_temperature(logits: Any, y: Any, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The ``T`` in ``bounds`` that minimises the validation NLL of ``sigmoid(logit / T)``
    under a log-normal prior centred on 1 (:data:`PRIOR_SD`): a MAP estimate.

    A bounded 1-D search on ``log T``.  The NLL is unweighted even when training weighted
    the malignant class: the served number must match the frequency of
    cancer among images like this one, not a rebalanced one.  With one class
    only (or no image) there is nothing to calibrate against and 1.0 is
    returned, i.e. the model's own probabilities.
    """
    from scipy.optimize import minimize_scalar

    z, y = _arrays(logits, y)
    if z.size == 0 or len(np.unique(y)) < 2:
        return 1.0
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize_scalar(_nll, bounds=(lo, hi), args=(z, y), method="bounded",
                          options={"xatol": 1e-7})
    best = float(res.x)
    # The bounded search never evaluates the ends exactly; a separable set wants one of them.
    for end in (lo, hi):
        if _nll(end, z, y) < _nll(best, z, y):
            best = end
    return float(math.exp(best))


def calibration_block(p: Any, y: Any, bins: int = ECE_BINS) -> dict[str, Any]:
    """``{"ece", "brier", "n", "curve"}`` of one grid's served probabilities."""
    p, y = _arrays(p, y)
    return {"ece": expected_calibration_error(p, y, bins), "brier": brier_score(p, y),
            "n": int(p.size), "curve": reliability_curve(p, y, bins)}


UNCALIBRATED_COLUMN = "p_uncalibrated"
"""Optional column of ``predictions.csv``: the model's own sigmoid before temperature scaling."""


def table_calibration(df: Any, mode_keys: dict[str, str], bins: int = ECE_BINS) -> dict[str, Any]:
    """The ``calibration`` block of ``metrics.json`` from a cleaned prediction table.

    One entry per grid present (``baseline`` / ``roi_aware``) on the served
    ``p_malignant``; when the table also carries :data:`UNCALIBRATED_COLUMN`
    the same numbers before scaling sit under ``"uncalibrated"``.
    """
    import pandas as pd

    out: dict[str, Any] = {"bins": bins, "binning": "equal-width", "probability": "p_malignant"}
    for mode, key in mode_keys.items():
        rows = df[df["mode"] == mode]
        if rows.empty:
            continue
        y = rows["label"].to_numpy()
        block = calibration_block(rows["p_malignant"].to_numpy(), y, bins)
        if UNCALIBRATED_COLUMN in rows.columns:
            raw = pd.to_numeric(rows[UNCALIBRATED_COLUMN], errors="coerce").to_numpy(float)
            if not np.isnan(raw).any():
                block["uncalibrated"] = {"ece": expected_calibration_error(raw, y, bins),
                                         "brier": brier_score(raw, y)}
        out[key] = block
    return out
