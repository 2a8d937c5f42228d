"""Calibration: temperature scaling, ECE, Brier score and the reliability curve.

A clinician reads "37 %" as "about a third of such images are cancers".  A
network trained with cross-entropy on few images is usually over-confident,
so its raw sigmoid is not that.  Temperature scaling (Guo et al., 2017)
divides a logit by one scalar ``T > 0`` after taking off an offset
(:class:`Calibration`), both fitted on validation images: it changes how
confident the numbers are, never one model's order, so its ROC AUC and the
images a threshold separates stay as they were.  Where they are fitted
(per grid, or per cell on a large validation set) is decided in
:mod:`core.train.calibrate`.

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
from dataclasses import dataclass
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


def scaled_probability(logits: Any, temperature: float, offset: float = 0.0) -> np.ndarray:
    """``sigmoid((logit - offset) / T)`` in float64, stable for large logits."""
    z = (np.asarray(logits, dtype=np.float64) - float(offset)) / float(temperature)
    return np.exp(-np.logaddexp(0.0, -z))


PRIOR_SD = 0.5
"""Standard deviation of the log-normal prior on ``T`` (centred on 1, i.e. no change).

A validation set of a dozen images with one or two cancers is often
perfectly separated; there the likelihood alone drives ``T`` to its lower
bound (probabilities of 0 and 1) and the served figures become wildly
over-confident on new images.  The prior keeps ``T`` near 1 unless the
evidence is strong: with thousands of images it is negligible.
"""

OFFSET_PRIOR_SD = 2.0
"""Standard deviation of the normal prior on the logit offset (centred on 0).

Wide on purpose: class-balanced training (``--balanced``, BCE ``pos_weight`` =
n_benign / n_malignant) moves every logit up by about log(pos_weight), 1.7 at
15 % prevalence, and the offset is there to take that back; the prior only
keeps a one-class-heavy set from pushing it to infinity.
"""


@dataclass(frozen=True)
class Calibration:
    """How a model's logit becomes the served probability: ``sigmoid((z - offset) / T)``.

    Temperature alone (Guo et al., 2017) fixes over-confidence but cannot move
    the probabilities' centre, and a class-balanced loss puts that centre at
    the balanced prevalence (about 0.5) instead of the data's (about 0.15 on
    VinDr): the served numbers then over-state every risk whatever ``T`` is.
    The offset (Platt's intercept) takes that shift back.  Both are monotone
    in the logit, so one model's ranking, hence its AUC, never changes.
    """

    temperature: float = 1.0
    offset: float = 0.0

    def probability(self, logits: Any) -> np.ndarray:
        """The served P(malignant) of ``logits``."""
        return scaled_probability(logits, self.temperature, self.offset)


IDENTITY = Calibration()


def _nll(params: np.ndarray, z: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of ``sigmoid((z - b) / exp(log_t))`` (unweighted), plus
    the priors' share per image (:data:`PRIOR_SD`, :data:`OFFSET_PRIOR_SD`)."""
    log_t, b = float(params[0]), float(params[1])
    s = (z - b) * math.exp(-log_t)
    prior = log_t ** 2 / (2 * PRIOR_SD ** 2) + b ** 2 / (2 * OFFSET_PRIOR_SD ** 2)
    return float(np.mean(np.logaddexp(0.0, s) - y * s) + prior / z.size)


def fit_calibration(logits: Any, y: Any, bounds: tuple[float, float] = T_BOUNDS) -> Calibration:
    """The ``(T, offset)`` that minimise the NLL of ``sigmoid((logit - offset) / T)``
    under the priors above (a MAP estimate), ``T`` kept in ``bounds``.

    The NLL is unweighted even when training weighted the malignant class:
    the served number must match the frequency of cancer among images like
    this one, not a rebalanced one.  With one class only (or no image)
    there is nothing to calibrate against and the identity is returned, i.e.
    the model's own probabilities.
    """
    from scipy.optimize import minimize

    z, y = _arrays(logits, y)
    if z.size == 0 or len(np.unique(y)) < 2:
        return IDENTITY
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize(_nll, np.zeros(2), args=(z, y), method="L-BFGS-B",
                   bounds=[(lo, hi), (None, None)], options={"ftol": 1e-12, "gtol": 1e-9})
    return Calibration(float(math.exp(res.x[0])), float(res.x[1]))


PLATT_T_BOUNDS: tuple[float, float] = (1e-3, 1e3)
"""The temperature's range for :func:`fit_platt`: a raw score's logit has no natural
scale (a segmentation map's peak logit can sit anywhere from 5 to 40)."""


def _platt_nll(params: np.ndarray, z: np.ndarray, t: np.ndarray) -> float:
    s = (z - float(params[1])) * math.exp(-float(params[0]))
    return float(np.mean(np.logaddexp(0.0, s) - t * s))


def fit_platt(logits: Any, y: Any, bounds: tuple[float, float] = PLATT_T_BOUNDS) -> Calibration:
    """Platt scaling (Platt, 1999) of a raw score's logit: the ``(T, offset)`` minimising the
    cross-entropy of ``sigmoid((z - offset) / T)`` against Platt's smoothed targets.

    For a score that is not a probability (a map's peak, a head trained
    beside a segmentation loss) neither ``T`` near 1 nor an offset near 0 is
    a sensible prior, so :func:`fit_calibration`'s priors do not apply.  The
    targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` do the priors' job:
    a perfectly separated validation carve keeps a finite slope instead of
    driving every score to 0 or 1.  With one class only (or no image) the
    identity is returned.
    """
    from scipy.optimize import minimize

    z, y = _arrays(logits, y)
    if z.size == 0 or len(np.unique(y)) < 2:
        return IDENTITY
    n_pos, n_neg = float(y.sum()), float(y.size - y.sum())
    targets = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    spread = float(np.std(z)) or 1.0
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    start = np.array([min(max(math.log(spread), lo), hi), float(np.mean(z))])
    res = minimize(_platt_nll, start, args=(z, targets), method="L-BFGS-B",
                   bounds=[(lo, hi), (None, None)], options={"ftol": 1e-12, "gtol": 1e-9})
    return Calibration(float(math.exp(res.x[0])), float(res.x[1]))


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
