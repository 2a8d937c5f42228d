"""Evaluation of a run's prediction table: metrics, CIs, McNemar, reference rows.

Evaluation reads ``predictions.csv`` (one row per test image and mode), never
a model, so it can be re-run, audited and tested without a GPU.

Why each piece is here (README, "Method, and what the paper does not say"):

* ROI presence alone is a strong label signal, so every comparison carries a
  ``roi_presence_only`` row (malignant iff an ROI exists) and a ``majority``
  row (always the majority class).
* The paper's "F-score" is ambiguous: both ``f1_malignant`` (binary F1 with
  malignant as the positive class) and ``f1_weighted`` (per-class F1 averaged
  with class-support weights) are reported; the paper-style table's F-score
  row is ``f1_weighted``.
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
- :mod:`~core.evaluate.calibration`: temperature fitting, ECE (10 equal-width bins), Brier,
  the reliability curve and the ``calibration`` block.
- :mod:`~core.evaluate.cv`: mean ± sd summary of per-fold cross-validation results.
- :mod:`~core.evaluate.jsonio`: plain-JSON conversion (NaN → null) and atomic writes.
- :mod:`~core.evaluate.run_folder`: :func:`evaluate_run`: a run folder in, ``metrics.json`` out;
  :func:`evaluate_external`: the same for an external dataset's folder inside the run.
- :mod:`~core.evaluate.pointing`: the Grad-CAM pointing score (peak in the dilated ROI vs chance).
- :mod:`~core.evaluate.report`: the paper-style text tables, per-cell lines, CV summary.
"""
from __future__ import annotations

# Private helpers are re-exported too, so every name of the former core/evaluate.py
# still resolves as core.evaluate.<name>.
# ruff: noqa: F401

from core.evaluate.bootstrap import (_BOOT_CHUNK, _chunked, _count_metrics, _percentile_ci,
                                     auc_samples, metric_block, patient_bootstrap_weights)
from core.evaluate.constants import (CI_LEVEL, CV_FILE, DEFAULT_THRESHOLD, F_SCORE_DEFINITION,
                                     METRIC_NAMES, METRICS_FILE, MODE_KEYS, PREDICTIONS_FILE,
                                     REFERENCE_KEYS, REQUIRED_COLUMNS, RUN_FILE, SYNTHETIC_BANNER,
                                     SYSTEM_KEYS)
from core.evaluate.cv import _is_count, summarize_cv
from core.evaluate.jsonio import _jsonable, atomic_write_json
from core.evaluate.mcnemar import _correct, _mcnemar_between, mcnemar_exact, paired_mcnemar
from core.evaluate.metrics import (_as_binary, _nan_to_none, _ratio, _threshold_metric, accuracy,
                                   balanced_accuracy, confusion_counts, confusion_matrix,
                                   f1_malignant, f1_weighted, metrics_from_counts, sensitivity,
                                   specificity)
from core.evaluate.paper import PAPER_REPORTED, paper_reported
from core.evaluate.per_cell import _cell_order, per_cell_metrics
from core.evaluate.report import (TABLE_COLUMNS, TABLE_ROWS, _fmt, _fmt_p, _footnote,
                                  _header_lines, format_cell, format_cv, format_paper_table,
                                  format_per_cell, format_report)
from core.evaluate.roc import _auc_from_weights, roc_auc, roc_points
from core.evaluate.run_folder import (_read_json, _run_header, evaluate_external, evaluate_run,
                                      external_folder)
from core.evaluate.score import _empty_block, _majority, evaluate_predictions
from core.evaluate.table import (_FALSE, _MODE_ALIASES, _TRUE, _parse_bool, _parse_float,
                                 _parse_label, clean_predictions, read_predictions)

__all__ = [
    "CI_LEVEL", "CV_FILE", "DEFAULT_THRESHOLD", "F_SCORE_DEFINITION", "METRICS_FILE",
    "METRIC_NAMES", "MODE_KEYS", "PAPER_REPORTED", "PREDICTIONS_FILE", "REFERENCE_KEYS",
    "REQUIRED_COLUMNS", "RUN_FILE", "SYNTHETIC_BANNER", "SYSTEM_KEYS", "TABLE_COLUMNS",
    "TABLE_ROWS", "accuracy", "atomic_write_json", "auc_samples", "balanced_accuracy",
    "clean_predictions", "confusion_counts", "confusion_matrix", "evaluate_predictions",
    "evaluate_external", "evaluate_run", "external_folder", "f1_malignant", "f1_weighted", "format_cell", "format_cv",
    "format_paper_table", "format_per_cell", "format_report", "mcnemar_exact", "metric_block",
    "metrics_from_counts", "paired_mcnemar", "paper_reported", "patient_bootstrap_weights",
    "per_cell_metrics", "read_predictions", "roc_auc", "roc_points", "sensitivity",
    "specificity", "summarize_cv",
]
