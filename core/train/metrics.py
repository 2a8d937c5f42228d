"""Small scoring helpers: Youden's threshold and what it did, validation AUC, sigmoid and BCE."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from core.evaluate.metrics import nan_to_none
from core.evaluate.roc import roc_auc


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut maximising sensitivity + specificity − 1 (malignant iff p ≥ t)."""
    from sklearn.metrics import roc_curve

    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """What the threshold did on the images it was chosen on: counts, sensitivity, specificity.

    Stored in meta.json so the threshold can be stated to a clinician as
    "caught 9 of 10 cancers, cleared 85 % of benign images" (None when a class is absent).
    """
    y = np.asarray(y).astype(int)
    called = np.asarray(p) >= threshold
    tp, fn = int(np.sum(called & (y == 1))), int(np.sum(~called & (y == 1)))
    tn, fp = int(np.sum(~called & (y == 0))), int(np.sum(called & (y == 0)))
    return {"threshold_counts": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
            "threshold_sensitivity": tp / (tp + fn) if tp + fn else None,
            "threshold_specificity": tn / (tn + fp) if tn + fp else None}


def auc_or_none(y: np.ndarray, p: np.ndarray) -> float | None:
    """Validation ROC AUC for meta.json and the progress log: null with one class only.

    The same Mann–Whitney statistic evaluation reports (:func:`core.evaluate.roc.roc_auc`),
    so an epoch chosen by validation AUC is chosen by the number the reader later sees.
    """
    return nan_to_none(roc_auc(y, p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Probabilities from logits, in float64: the precision thresholds and ECE are computed in."""
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def bce(logits: np.ndarray, y: np.ndarray, pos_weight: float) -> float:
    """Validation loss with training's class weight, so the epoch it picks is judged alike."""
    z = torch.from_numpy(logits.astype(np.float32))
    return float(nn.functional.binary_cross_entropy_with_logits(
        z, torch.from_numpy(y), pos_weight=torch.tensor(pos_weight)))
