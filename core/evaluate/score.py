"""Scoring one prediction table: both grids and the reference rows, at 0.5 and tuned.

:func:`evaluate_predictions` assembles everything ``metrics.json`` holds:
metric blocks with CIs, confusion counts, ROC points, per-cell metrics,
McNemar, the paired patient-level comparison of the grids, and the same per
breast (:mod:`~core.evaluate.breast`).  ROI presence
alone is a strong label signal, so the ``roi_presence_only`` and ``majority``
reference rows are scored beside the grids.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.evaluate.bootstrap import auc_samples, metric_block, patient_bootstrap_weights
from core.evaluate.breast import breast_level
from core.evaluate.calibration import table_calibration
from core.evaluate.constants import (
    CI_LEVEL,
    DEFAULT_THRESHOLD,
    F_SCORE_DEFINITION,
    METRIC_NAMES,
    MODE_KEYS,
)
from core.evaluate.mcnemar import mcnemar_between
from core.evaluate.metrics import confusion_counts
from core.evaluate.paired import paired_comparison
from core.evaluate.per_cell import per_cell_metrics
from core.evaluate.roc import roc_points
from core.evaluate.roifinder import PROPOSED_KEY, PROPOSED_MODE, proposed_mcnemar
from core.evaluate.table import clean_predictions


def _majority(train_counts: Mapping[str, Any] | None, images: pd.DataFrame) -> tuple[int, str]:
    """Majority class (0/1) and where it came from; ties go to benign."""
    if train_counts:
        benign, malignant = int(train_counts.get("benign", 0)), int(train_counts.get("malignant", 0))
        return int(malignant > benign), "train"
    return int(images["label"].sum() > (len(images) - images["label"].sum())), "test"


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
        tuned = key in (*MODE_KEYS.values(), PROPOSED_KEY)
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

    proposed = df[df["mode"] == PROPOSED_MODE]  # the ROI-aware grid routed by the ROI finder
    if not proposed.empty:
        p = proposed["p_malignant"].to_numpy()
        result[PROPOSED_KEY], result["tuned"][PROPOSED_KEY] = add_system(
            PROPOSED_KEY, proposed, (p >= DEFAULT_THRESHOLD).astype(int),
            (p >= proposed["threshold"].to_numpy()).astype(int), p)
        result["per_cell"][PROPOSED_KEY] = per_cell_metrics(proposed, "roi")
        result[f"n_images_{PROPOSED_KEY}"] = int(len(proposed))
        result["mcnemar_proposed"] = proposed_mcnemar(df)
        result["paired_proposed"] = paired_comparison(
            df, "baseline", PROPOSED_MODE, patients, boot, f"{PROPOSED_KEY} minus baseline")

    roi_pred = images["roi"].to_numpy().astype(int)
    result["roi_presence_only"], _ = add_system("roi_presence_only", images, roi_pred, roi_pred,
                                                roi_pred.astype(float))
    maj_pred = np.full(len(images), majority_label, dtype=int)
    result["majority"], _ = add_system("majority", images, maj_pred, maj_pred, None)

    result["mcnemar"] = {"at_0.5": mcnemar_between(df, tuned=False),
                         "at_tuned": mcnemar_between(df, tuned=True)}
    at05 = result["mcnemar"]["at_0.5"]
    result["mcnemar_p"] = at05["p"] if at05 else None
    result["paired"] = paired_comparison(df, "baseline", "roi", patients, boot,
                                         "roi_aware minus baseline")
    result["calibration"] = table_calibration(df, MODE_KEYS)
    result["breast_level"] = breast_level(df, patients, boot, majority_label, source)
    return result
