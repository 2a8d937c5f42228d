"""Routed inference: one study (up to four views) or a whole manifest, with Grad-CAM.

Every image goes to the model of its cell (:func:`core.grid.route_image`):
the ROI-aware grid by (ROI present?, view), the baseline grid by view.  Only
the *presence* of an ROI routes; its pixels are never a model input, and they
are kept here only to draw an outline.

Why the pieces look as they do:

* A run may lack a cell (too few images → ``skipped``).  A clinician still
  needs an answer for that view, so :data:`core.grid.FALLBACK_ORDER` says which model
  stands in, and every result says that it did (``fallback``,
  ``fallback_reason``) — a silent substitution would misreport the method.
* A new study usually has no mask, so the view and the ROI decide the model;
  both are reported per image, and contradictions between DICOM tags and the
  file name are warned about rather than resolved silently.
* One unreadable view must not cost the other three: every
  :class:`~core.errors.MammoError` is caught per view and shown as that
  view's ``error``.
* Models are loaded once, verified by SHA-256, and Grad-CAM hooks are
  attached only while a CAM is computed, so memory stays flat across calls.
"""
from __future__ import annotations

from core.predict.manifest import predict_manifest
from core.predict.study import BATCH_SIZE, Predictor
from core.predict.types import PREDICTION_COLUMNS, SUMMARY_KEYS, RoiSource, ViewInput, ViewResult

__all__ = ["BATCH_SIZE", "PREDICTION_COLUMNS", "SUMMARY_KEYS", "Predictor", "RoiSource",
           "ViewInput", "ViewResult", "predict_manifest"]
