"""Evaluation of a run's prediction table: metrics, CIs, McNemar, reference rows.

Evaluation reads ``predictions.csv`` (one row per test image and mode), never
a model, so it can be re-run, audited and tested without a GPU.

Why each piece is here (README, "Method, and what the paper does not say"):

* ROI presence alone is a strong label signal, so every comparison carries a
  ``roi_presence_only`` row (malignant iff an ROI exists) and a ``majority``
  row (always the majority class).
* The paper's "F-score" is undefined there; its printed values fit only the
  harmonic mean of sensitivity and specificity (``f_sens_spec``, reasoning at
  :data:`~core.evaluate.constants.F_SCORE_DEFINITION`), which is the
  paper-style table's F-score row; ``f1_malignant`` (binary F1 with malignant
  as the positive class) and ``f1_weighted`` (per-class F1 averaged with
  class-support weights) are reported beside it.
* Test sets are small and images of one patient are correlated, so every
  metric has a patient-level bootstrap 95 % CI; baseline vs ROI-aware gets
  an exact McNemar test on the paired images, and, because McNemar counts
  images as independent, paired bootstrap deltas and an exact patient-level
  sign-flip test of the discordance.

Conventions: an image is called malignant when ``p_malignant >= threshold``.
A ratio whose denominator is zero (e.g. sensitivity with no malignant image)
is NaN, stored as JSON ``null`` and shown as "–".  Balanced accuracy is NaN
unless both classes are present.  ROC AUC is NaN with one class only.

The modules, from the bottom up:

- :mod:`~core.evaluate.constants`: metric and system keys, required columns, the default
  threshold, the CI level, run-folder file names, the synthetic-data banner.
- :mod:`~core.evaluate.paper`: the paper's Tables 5–8 as printed and the loose
  dataset / architecture lookup.
- :mod:`~core.evaluate.metrics`: threshold metrics from confusion counts (vectorised),
  confusion counts / matrix, the NaN conventions.
- :mod:`~core.evaluate.roc`: weighted Mann–Whitney ROC AUC and ROC curve points.
- :mod:`~core.evaluate.bootstrap`: patient-level bootstrap weights, resampled metrics,
  percentile CIs, one system's metric block.
- :mod:`~core.evaluate.mcnemar`: the exact McNemar test and baseline vs ROI-aware pairing.
- :mod:`~core.evaluate.paired`: paired patient-level bootstrap deltas of two grids and the
  exact sign-flip test of their per-patient discordance.
- :mod:`~core.evaluate.table`: reading, validating and normalising ``predictions.csv``.
- :mod:`~core.evaluate.per_cell`: per-cell metrics at 0.5, in grid order.
- :mod:`~core.evaluate.score`: :func:`evaluate_predictions`: both grids and the reference
  rows, at 0.5 and at the tuned thresholds.
- :mod:`~core.evaluate.breast`: the same systems per breast (any image malignant; called when
  any view is; AUC by the highest view), with the image level's patient resamples.
- :mod:`~core.evaluate.calibration`: temperature fitting, ECE (10 equal-width bins), Brier,
  the reliability curve and the ``calibration`` block.
- :mod:`~core.evaluate.cv`: mean ± sd summary of per-fold cross-validation results.
- :mod:`~core.evaluate.run_folder`: :func:`evaluate_run`: a run folder in, ``metrics.json`` out;
  :func:`evaluate_external`: the same for an external dataset's folder inside the run.
- :mod:`~core.evaluate.pointing`: the Grad-CAM pointing score (peak in the dilated ROI vs chance).
- :mod:`~core.evaluate.report`: the paper-style text tables, per-cell lines, CV summary.
"""
from __future__ import annotations

from core.evaluate.bootstrap import patient_bootstrap_weights
from core.evaluate.constants import METRIC_NAMES, SYNTHETIC_BANNER
from core.evaluate.mcnemar import mcnemar_exact, paired_mcnemar
from core.evaluate.metrics import (
    accuracy,
    balanced_accuracy,
    confusion_counts,
    confusion_matrix,
    f1_malignant,
    f1_weighted,
    f_sens_spec,
    metrics_from_counts,
    sensitivity,
    specificity,
)
from core.evaluate.paper import PAPER_REPORTED, paper_reported
from core.evaluate.report import format_cell, format_paper_table, format_report
from core.evaluate.roc import roc_auc, roc_points
from core.evaluate.run_folder import evaluate_external, evaluate_run, external_folder
from core.evaluate.score import evaluate_predictions

__all__ = [
    "METRIC_NAMES", "PAPER_REPORTED", "SYNTHETIC_BANNER", "accuracy", "balanced_accuracy",
    "confusion_counts", "confusion_matrix", "evaluate_external", "evaluate_predictions",
    "evaluate_run", "external_folder", "f1_malignant", "f1_weighted", "f_sens_spec", "format_cell",
    "format_paper_table", "format_report", "mcnemar_exact", "metrics_from_counts",
    "paired_mcnemar", "paper_reported", "patient_bootstrap_weights", "roc_auc", "roc_points",
    "sensitivity", "specificity",
]
