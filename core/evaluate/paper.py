"""The paper's published numbers (Tables 5–8) and the loose lookup the UI uses.

Kept apart from the metric code: these are printed reference values, not
anything computed from a run.
"""
from __future__ import annotations

from typing import Any

# The paper's Tables 5–8 (Yoshitsugu et al., 2025), as printed.  Keys:
# dataset → arch → mode.  ``f_score`` is the paper's unlabelled F-score.
PAPER_REPORTED: dict[str, dict[str, dict[str, Any]]] = {
    "vindr": {
        "swin": {
            "table": 5,
            "baseline": {"sensitivity": 0.00, "specificity": 1.00, "f_score": 0.00, "accuracy": 0.85},
            "roi_aware": {"sensitivity": 0.93, "specificity": 0.87, "f_score": 0.90, "accuracy": 0.87},
        },
        "convnextv2": {
            "table": 6,
            "baseline": {"sensitivity": 0.00, "specificity": 1.00, "f_score": 0.00, "accuracy": 0.85},
            "roi_aware": {"sensitivity": 0.90, "specificity": 0.86, "f_score": 0.88, "accuracy": 0.87},
        },
    },
    "cdd_cesm": {
        "swin": {
            "table": 7,
            "baseline": {"sensitivity": 0.29, "specificity": 0.68, "f_score": 0.41, "accuracy": 0.48},
            "roi_aware": {"sensitivity": 0.65, "specificity": 0.65, "f_score": 0.65, "accuracy": 0.65},
        },
        "convnextv2": {
            "table": 8,
            "baseline": {"sensitivity": 0.65, "specificity": 0.65, "f_score": 0.65, "accuracy": 0.65},
            "roi_aware": {"sensitivity": 0.74, "specificity": 0.61, "f_score": 0.67, "accuracy": 0.68},
        },
    },
}

PAPER_TEST_SETS: dict[str, dict[str, int]] = {
    "vindr": {"malignant": 198, "benign": 1120},  # Table 1
    "cdd_cesm": {"malignant": 31, "benign": 31},  # Table 3
}
"""The test sets the paper's Tables 5–8 were scored on, to check a metric's definition
against the printed numbers (:data:`~core.evaluate.constants.F_SCORE_DEFINITION`)."""


def paper_reported(dataset: str | None, arch: str | None) -> dict[str, Any] | None:
    """The paper's numbers for a run's dataset and architecture family, or None.

    Names are matched loosely ("VinDr-Mammo", "cdd-cesm", "swin_micro") because
    the UI wants the nearest published reference, not an exact replication.
    """
    ds = "".join(ch for ch in str(dataset or "").lower() if ch.isalnum())
    ar = str(arch or "").lower()
    ds_key = "vindr" if ds.startswith("vindr") else "cdd_cesm" if ds.startswith("cdd") else None
    arch_key = "swin" if ar.startswith("swin") else "convnextv2" if "convnext" in ar else None
    if ds_key is None or arch_key is None:
        return None
    return {"dataset": ds_key, "arch": arch_key, **PAPER_REPORTED[ds_key][arch_key]}
