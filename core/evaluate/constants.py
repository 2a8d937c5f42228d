"""Names and fixed values shared by the evaluation modules.

Metric and system keys, the prediction table's required columns, the default
threshold, the CI level and the run-folder file names live here so that the
metric code, the JSON writer and the text tables agree on one spelling.
"""
from __future__ import annotations

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
CAM_POINTING_FILE = "cam_pointing.json"  # written where the models ran
EXTERNAL_DIR = "external"  # <run>/external/<dataset>-<split>/: external validations
DATASET_FILE = "dataset.json"  # in an external folder: which dataset, layout, split
SYNTHETIC_BANNER = "SYNTHETIC PHANTOM DATA — not evidence about real patients"
