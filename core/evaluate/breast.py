"""Breast-level results: the prediction table read per breast, as a radiologist decides.

VinDr-Mammo and CDD-CESM label each breast (one study, one side), and a
clinician answers per breast, so ``metrics.json`` carries a ``breast_level``
block beside the image-level one.  A breast is (patient, study, laterality);
its views are the table's images of that key.  The rules, stated once here
and in the block itself (:data:`BREAST_RULES`):

* **Label**: malignant when any of its images is.  VinDr gives every image
  of a breast the breast's label, so this only matters where images of one
  breast disagree (``n_breasts_mixed_label`` counts them).
* **Call**: malignant when any view's own call is, each view at its own
  threshold (p ≥ 0.5, or the validation-tuned threshold of the cell that
  served it).  This is the rule case review applies; with per-cell
  thresholds it is not "maximum probability ≥ one threshold", so threshold
  metrics are computed from these calls, not from the breast probability.
* **Probability** (for ROC AUC only): the maximum over its views.  A breast
  with one suspicious view is suspicious; a mean would dilute a lesion seen
  on one projection by the clean other one.  At p ≥ 0.5 the call and the
  maximum agree (max ≥ 0.5 iff some view ≥ 0.5).  Measured against the mean
  and the noisy-or on a demo-recipe run's validation patients
  (``benchmarks/breast_rule.py``, figures in the README): the maximum ranked
  breasts best in both grids, no difference significant.
* **ROI presence only**: malignant when any view has an ROI.

A grid's breasts are built from the views that grid scored; the paired
differences use only images both grids scored, so both sides see the same
breasts.  Metrics, patient-level bootstrap CIs and the paired deltas come
from :mod:`~core.evaluate.bootstrap` and :mod:`~core.evaluate.paired` with
the image level's patient resamples, so the two levels' intervals are
comparable.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import CheckpointError
from core.evaluate.bootstrap import auc_samples, metric_block
from core.evaluate.constants import DEFAULT_THRESHOLD, MODE_KEYS
from core.evaluate.metrics import confusion_counts
from core.evaluate.paired import paired_calls
from core.evaluate.roifinder import PROPOSED_KEY, PROPOSED_MODE
from core.grid import VIEWS

BREAST_RULES: dict[str, str] = {
    "unit": "breast = patient_id + study_id + laterality (the first letter of the view)",
    "label": "malignant when any of the breast's images is",
    "call": ("malignant when any view's own call is (p >= 0.5, or p >= the validation-tuned "
             "threshold of the cell that served that view); threshold metrics use these calls"),
    "probability": "maximum P(malignant) over the breast's views; ROC AUC ranks breasts by it",
    "roi_presence_only": "malignant when any view has an ROI",
}
_KEY = ["patient_id", "study_id", "laterality"]


def _with_laterality(df: pd.DataFrame, source: Any) -> pd.DataFrame:
    bad = sorted(set(df["view"]) - set(VIEWS))
    if bad:
        raise CheckpointError(f"column 'view' has value(s) {bad[:5]}; breast-level results need "
                              f"one of {', '.join(VIEWS)}", source)
    return df.assign(laterality=df["view"].str[0])


def breasts_of(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per breast of one grid's image rows (with ``laterality``).

    Columns: the key, ``label`` (any image malignant), ``p_max``, ``call_05``
    and ``call_tuned`` (any view called at 0.5 / at its own threshold),
    ``roi`` (any view with an ROI), ``n_views`` and ``mixed_label``.
    """
    rows = rows.assign(call_05=rows["p_malignant"] >= DEFAULT_THRESHOLD,
                       call_tuned=rows["p_malignant"] >= rows["threshold"])
    grouped = rows.groupby(_KEY, sort=True)
    out = grouped.agg(label=("label", "max"), p_max=("p_malignant", "max"),
                      call_05=("call_05", "any"), call_tuned=("call_tuned", "any"),
                      roi=("roi", "any"), n_views=("view", "size"),
                      mixed_label=("label", "nunique"))
    out["mixed_label"] = out["mixed_label"] > 1
    return out.reset_index()


def _system(breasts: pd.DataFrame, patients: pd.Index, boot: np.ndarray,
            calls: tuple[np.ndarray, np.ndarray], score: np.ndarray | None
            ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(block at 0.5, block at the tuned thresholds, confusion counts at both).

    A reference row passes the same calls twice; its block is computed once."""
    y = breasts["label"].to_numpy().astype(int)
    codes = patients.get_indexer(breasts["patient_id"])
    auc = auc_samples(y, score, codes, boot)
    at_05 = metric_block(y, calls[0], codes, boot, auc)
    tuned = at_05 if calls[1] is calls[0] else metric_block(y, calls[1], codes, boot, auc)
    return at_05, tuned, {"at_0.5": confusion_counts(y, calls[0]),
                          "at_tuned": confusion_counts(y, calls[1])}


def _paired(df: pd.DataFrame, mode_b: str, patients: pd.Index, boot: np.ndarray,
            difference: str) -> dict[str, Any] | None:
    """``mode_b`` minus baseline per breast, on the images both grids scored."""
    a, b = df[df["mode"] == "baseline"], df[df["mode"] == mode_b]
    common = set(a["image_path"]) & set(b["image_path"])
    if not common:
        return None
    ba = breasts_of(a[a["image_path"].isin(common)])
    bb = breasts_of(b[b["image_path"].isin(common)])  # same images, so the same breasts, in order
    calls = {at: (ba[col].to_numpy().astype(int), bb[col].to_numpy().astype(int))
             for at, col in (("at_0.5", "call_05"), ("at_tuned", "call_tuned"))}
    return {"difference": difference, "n_breasts": int(len(ba)),
            "n_patients": int(ba["patient_id"].nunique()),
            **paired_calls(ba["label"].to_numpy().astype(int),
                           patients.get_indexer(ba["patient_id"]),
                           (ba["p_max"].to_numpy(), bb["p_max"].to_numpy()), calls, boot)}


def breast_level(df: pd.DataFrame, patients: pd.Index, boot: np.ndarray, majority_label: int,
                 source: Any = None) -> dict[str, Any]:
    """The ``breast_level`` block of ``metrics.json`` from a cleaned prediction table.

    ``patients`` / ``boot`` are the image level's patient index and resamples,
    ``majority_label`` its majority class (the class a model would guess).
    Keys mirror the image level (systems at 0.5 on top, ``tuned``,
    ``confusion``, ``paired``, ``paired_proposed``) so the same table code
    renders both.  Reference rows have no threshold: their tuned block is
    left out, as at the image level.
    """
    df = _with_laterality(df, source)
    images = breasts_of(df.drop_duplicates("image_path"))
    result: dict[str, Any] = {
        "rules": dict(BREAST_RULES), "n_breasts": int(len(images)),
        "n_patients": int(images["patient_id"].nunique()),
        "n_malignant": int(images["label"].sum()),
        "n_breasts_mixed_label": int(images["mixed_label"].sum()),
        "tuned": {}, "confusion": {},
    }
    for mode, key in (*MODE_KEYS.items(), (PROPOSED_MODE, PROPOSED_KEY)):
        rows = df[df["mode"] == mode]
        if rows.empty:  # a grid the run does not have (no ROI finder, one grid only)
            continue
        breasts = breasts_of(rows)
        calls = (breasts["call_05"].to_numpy().astype(int),
                 breasts["call_tuned"].to_numpy().astype(int))
        result[key], result["tuned"][key], result["confusion"][key] = _system(
            breasts, patients, boot, calls, breasts["p_max"].to_numpy())
        result[f"n_breasts_{key}"] = int(len(breasts))
    roi = images["roi"].to_numpy().astype(int)
    result["roi_presence_only"], _, result["confusion"]["roi_presence_only"] = _system(
        images, patients, boot, (roi, roi), roi.astype(float))
    majority = np.full(len(images), majority_label, dtype=int)
    result["majority"], _, result["confusion"]["majority"] = _system(
        images, patients, boot, (majority, majority), None)
    result["paired"] = _paired(df, "roi", patients, boot, "roi_aware minus baseline")
    if PROPOSED_KEY in result:
        result["paired_proposed"] = _paired(df, PROPOSED_MODE, patients, boot,
                                            f"{PROPOSED_KEY} minus baseline")
    return result
