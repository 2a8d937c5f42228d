"""What a reader must know before reading baseline against ROI-aware, said in words.

Two situations make the side-by-side numbers mean less than they seem, and
both are read from ``metrics.json`` alone (evaluation reads prediction tables):

* **ROI presence alone beats both grids**: "malignant iff an ROI exists" needs
  no image, so a grid below it adds nothing the routing signal did not give.
* **A view's without-ROI cell had no model**: its images were served by the
  baseline's model of that view (:data:`core.grid.FALLBACK_ORDER`), so for them
  "ROI-aware" *is* the baseline and the grids can differ only on images with an ROI.

And one sentence (:data:`TESTS_DIFFER`) on why the paired tests' p and a
difference's CI may seem to disagree.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.grid import VIEWS, Cell

CAVEAT_METRIC = ("balanced_accuracy", "balanced accuracy")
"""Compared at the page's operating point: it weighs both classes equally, so the
majority-class collapse cannot win it, and it is ROI presence's ROC AUC too."""
TESTS_DIFFER = (
    "McNemar and the sign-flip test ask whether the grids' calls disagree more often one way "
    "than the other at this operating point (only images or patients with different calls "
    "count), while a difference's 95 % CI asks whether a metric differs (ROC AUC ranks every "
    "image at every threshold), so a p near 1 can sit beside a CI that excludes 0: they test "
    "different things.")


def _value(block: Mapping[str, Any] | None, metric: str) -> float | None:
    value = ((block or {}).get(metric) or {}).get("value")
    return float(value) if isinstance(value, (int, float)) else None


def presence_beats_grids(result: Mapping[str, Any], tuned: bool) -> str | None:
    """A sentence when ROI presence alone scores above both grids (point estimates), else None."""
    metric, name = CAVEAT_METRIC
    grids = {key: (result.get("tuned") or {}).get(key) if tuned else result.get(key)
             for key in ("baseline", "roi_aware")}
    scores = {key: _value(block, metric) for key, block in grids.items()}
    presence = _value(result.get("roi_presence_only"), metric)
    if presence is None or any(v is None or v >= presence for v in scores.values()):
        return None
    return (f"ROI presence alone (malignant iff an ROI exists, no image read) scores a {name} of "
            f"{presence:.2f}, above both grids (baseline {scores['baseline']:.2f}, ROI-aware "
            f"{scores['roi_aware']:.2f}): on this test split, at this operating point, the "
            "images add nothing over the routing signal.")


def baseline_served_views(result: Mapping[str, Any]) -> list[str]:
    """Views whose ROI-aware images without an ROI were all served by the baseline's model
    (the without-ROI cell had no model), in hanging order."""
    cells = (result.get("per_cell") or {}).get("roi_aware") or {}
    return [v for v in VIEWS if Cell(None, v).name in cells and Cell(False, v).name not in cells]


def fallback_sentence(result: Mapping[str, Any]) -> str | None:
    """A sentence when some or every view's without-ROI cell stood in for by the baseline."""
    views = baseline_served_views(result)
    if not views:
        return None
    if len(views) == len(VIEWS):
        return ("Every without-ROI cell had no model: images without an "
                "ROI were read by the baseline's models, so for them “ROI-aware” is the "
                "baseline, and the two grids differ only on images with an ROI.")
    listed = ", ".join(views[:-1]) + (" and " if len(views) > 1 else "") + views[-1]
    return (f"The without-ROI cell of {listed} had no model: those "
            "views' images without an ROI were read by the baseline's model, so for them "
            "\"ROI-aware\" is the baseline.")


def comparison_caveats(result: Mapping[str, Any], tuned: bool) -> list[str]:
    """Every caveat above that holds for this run's metrics, at the page's operating point."""
    return [s for s in (presence_beats_grids(result, tuned), fallback_sentence(result)) if s]
