"""From a prediction (:class:`core.predict.ViewResult`) to a :class:`ViewOutcome`.

The predictor knows the routing, the probabilities and the tuned
thresholds; it does not know the operating point a reviewer chose, which
models are too weak to call, or how a user's ROI came (box, file, dataset).
Those stay with the caller, passed in as ``outcome_of`` and ``given_as``,
so the DICOM objects say exactly what the screen said.  Only core.predict's
public exports and :func:`core.grid.route_image` are used.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.dicomout.common import DicomOutError, GridOutcome, ViewOutcome
from core.grid import route_image
from core.predict import ViewResult

OutcomeOf = Callable[[ViewResult, str], GridOutcome]


def tuned_outcome(result: ViewResult, grid: str) -> GridOutcome:
    """A grid's outcome at its own validation-tuned threshold (p ≥ threshold), or no call
    without a probability or threshold.  Callers whose page uses another operating
    point, or withholds weak models' calls, pass their own ``outcome_of``."""
    p, t = getattr(result, f"p_malignant_{grid}"), getattr(result, f"threshold_{grid}")
    if p is None or t is None:
        return GridOutcome(p, t, None)
    return GridOutcome(float(p), float(t), "malignant" if p >= t else "benign")


def roi_source_of(result: ViewResult, given_as: str | None) -> str:
    """The ROI source as the DICOM objects name it: how a user's ROI was given
    (``dataset`` / ``mask`` / ``box``), ``proposed`` for an accepted finder proposal,
    ``none`` when no ROI routed the view."""
    if not result.roi:
        return "none"
    if result.roi_source == "proposed":
        return "proposed"
    return given_as or "mask"


def view_outcome(result: ViewResult, sop_instance_uid: str, *,
                 outcome_of: OutcomeOf = tuned_outcome, roi_mask: np.ndarray | None = None,
                 cam_overlay: np.ndarray | None = None, cam_grid: str = "roi_aware",
                 given_as: str | None = None) -> ViewOutcome:
    """One view's outcome.  ``roi_mask`` must be in the source image's pixels (the
    predictor keeps the ROI only at model-input size), ``cam_overlay`` the RGB image
    the page shows."""
    if result.error is not None or result.view is None:
        raise DicomOutError(f"{result.image}: no result to store ({result.error or 'no view'})")
    fallback = (result.fallback_reason or f"served by {result.cell_roi_aware}") \
        if result.fallback else None
    return ViewOutcome(
        sop_instance_uid=sop_instance_uid, view=result.view,
        cell=route_image(result.view, result.roi, "roi").name, fallback=fallback,
        roi_aware=outcome_of(result, "roi_aware"), baseline=outcome_of(result, "baseline"),
        roi_source=roi_source_of(result, given_as),
        roi_mask=roi_mask.astype(bool) if roi_mask is not None and result.roi else None,
        cam_overlay=cam_overlay, cam_grid=cam_grid)
