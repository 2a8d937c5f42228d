"""Names and fixed values shared by the evaluation modules.

Metric and system keys, the prediction table's required columns, the default
threshold, the CI level and the run-folder file names live here so that the
metric code, the JSON writer and the text tables agree on one spelling.
"""
from __future__ import annotations

METRIC_NAMES: tuple[str, ...] = (
    "sensitivity", "specificity", "f_sens_spec", "f1_malignant", "f1_weighted",
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
F_SCORE_DEFINITION = "f_sens_spec"
"""The metric the paper calls "F-score": the harmonic mean of sensitivity and specificity.

The paper never defines it, so it was read back from its own numbers.  For
each printed row (Tables 5–8, test sets of 198 malignant / 1,120 benign
images on VinDr and 31 / 31 on CDD-CESM, Tables 1 and 3), every integer
confusion table whose sensitivity, specificity and accuracy round to the
printed values was tried under four definitions:

====================  ======  ===========  ===========  ========  ============
row                   paper   malignant F1 weighted F1  macro F1  2·se·sp/(se+sp)
====================  ======  ===========  ===========  ========  ============
VinDr Swin baseline    0.00    0.00         0.78         0.46      0.00
VinDr Swin ROI-aware   0.90    0.69         0.89         0.81      0.90
VinDr CNXv2 baseline   0.00    0.00         0.78         0.46      0.00
VinDr CNXv2 ROI-aware  0.88    0.67–0.68    0.88         0.79–0.80 0.88
CDD Swin baseline      0.41    0.36         0.46         0.46      0.41
CDD Swin ROI-aware     0.65    0.65         0.65         0.65      0.65
CDD CNXv2 baseline     0.65    0.65         0.65         0.65      0.65
CDD CNXv2 ROI-aware    0.67    0.70         0.68         0.68      0.67
====================  ======  ===========  ===========  ========  ============

Malignant-class F1 fits 4 of the 8 rows (it fails both VinDr ROI-aware rows:
0.69 for a printed 0.90), support-weighted F1 fits 4 (it gives 0.78 where the
baselines print 0.00 at sensitivity 0.00), and only the harmonic mean of
sensitivity and specificity fits all 8, e.g. 2·0.93·0.87 / (0.93 + 0.87) =
0.899 and 2·0.29·0.68 / 0.97 = 0.407.  So the paper-style "F-score" column
is this metric and holds the paper's numbers; ``f1_malignant`` and
``f1_weighted`` are reported beside it as the usual F1s, without paper values.
"""
F_SCORE_LABEL = "F-score (2·sens·spec / (sens + spec), as the paper)"
CI_LEVEL = 0.95
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
CV_FILE = "cv.json"
CAM_POINTING_FILE = "cam_pointing.json"  # written where the models ran
EXTERNAL_DIR = "external"  # <run>/external/<dataset>-<split>/: external validations
DATASET_FILE = "dataset.json"  # in an external folder: which dataset, layout, split
SYNTHETIC_BANNER = "SYNTHETIC PHANTOM DATA — not evidence about real patients"
