"""Cross-validation summary: mean ± sd per mode and metric of ``cv.json``'s folds."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import CheckpointError
from core.evaluate.constants import MODE_KEYS
from core.evaluate.metrics import nan_to_none
from core.evaluate.table import MODE_ALIASES


def _is_count(name: str) -> bool:
    """Fold bookkeeping (fold index, n, n_malignant, n_unserved, n_fallback), not a metric."""
    return name in ("fold", "n") or name.startswith("n_")


RECIPE_KEY = "recipe"
"""cv.json's sentence saying what each fold trained (core.train.cv writes it)."""

UNRECORDED_RECIPE = ("These folds were trained before cv.json recorded its recipe: each cell "
                     "without the run's warm start, calibrated on its own; they do not "
                     "describe the models that serve.")


def cv_recipe(cv: Any) -> str:
    """What each fold of ``cv.json`` trained, said plainly; an older file is said to differ
    from the served recipe, because it did (folds never had the warm start)."""
    recipe = cv.get(RECIPE_KEY) if isinstance(cv, Mapping) else None
    return recipe if isinstance(recipe, str) and recipe else UNRECORDED_RECIPE


def summarize_cv(cv: Any, source: Any = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean ± sd (n − 1) per mode and metric of per-fold cross-validation results.

    Accepts ``{mode: [fold_metrics, ...]}`` or a list of fold dicts that each
    carry a ``mode`` key; non-numeric fields (and None, i.e. an undefined
    metric in that fold) and fold bookkeeping (``fold``, ``n``, ``n_*``) are
    skipped.
    """
    if isinstance(cv, Mapping) and isinstance(cv.get("folds"), list):
        cv = cv["folds"]
    if isinstance(cv, Mapping):
        cv = {mode: folds for mode, folds in cv.items() if mode != RECIPE_KEY}
    if isinstance(cv, list):
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for fold in cv:
            if not isinstance(fold, Mapping) or "mode" not in fold:
                raise CheckpointError("cross-validation folds must be objects with a 'mode'", source)
            grouped.setdefault(str(fold["mode"]), []).append(fold)
        cv = grouped
    if not isinstance(cv, Mapping):
        raise CheckpointError("expected {mode: [per-fold metrics]}", source)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for mode, folds in cv.items():
        if not isinstance(folds, list) or not all(isinstance(f, Mapping) for f in folds):
            raise CheckpointError(f"mode {mode!r}: expected a list of per-fold objects", source)
        key = MODE_KEYS.get(MODE_ALIASES.get(str(mode).lower(), ""), str(mode))
        metrics: dict[str, dict[str, Any]] = {}
        names = [k for f in folds for k, v in f.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not _is_count(k)]
        for name in dict.fromkeys(names):
            vals = np.array([float(f[name]) for f in folds if isinstance(f.get(name), (int, float))
                             and not isinstance(f.get(name), bool)])
            vals = vals[np.isfinite(vals)]
            metrics[name] = {"mean": nan_to_none(vals.mean()) if vals.size else None,
                             "sd": nan_to_none(vals.std(ddof=1)) if vals.size > 1 else None,
                             "n_folds": int(vals.size)}
        summary[key] = metrics
    return summary
