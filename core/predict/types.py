"""What a prediction takes and gives: one view in, one view's readout out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.grid import CellGap
from core.pixels.crop import CropBox
from core.pixels.views import ViewSource

PREDICTION_COLUMNS: tuple[str, ...] = (
    "image_path", "patient_id", "study_id", "view", "roi", "label", "mode", "cell",
    "fallback", "p_malignant", "threshold", "p_uncalibrated", "temperature", "logit_offset",
)
SUMMARY_KEYS: tuple[str, ...] = (
    "image", "view", "view_source", "roi", "cell", "cell_baseline", "fallback",
    "fallback_reason", "p_malignant_roi_aware", "p_malignant_baseline",
    "threshold_roi_aware", "threshold_baseline", "roi_source", "roi_probability", "roi_boxes",
    "warnings", "error",
)
RoiSource = Literal["mask", "proposed", "none"]



@dataclass
class ViewInput:
    """One image of a study, as a file or as pixels already read.

    ``pixels`` are what :func:`core.pixels.preprocess.render_source` returns under the
    run's spec (uint8, tissue bright; what the app keeps of an upload) or
    floats in [0, 1] as :func:`core.pixels.read.read_image` gives; other integer
    arrays are scaled by their dtype's range.  ``tags["source_shape"]`` is the
    mammogram's full size when the pixels are a reduced rendering (masks are
    at that size), ``tags["source_side"]`` the spec's side it was rendered at
    (checked: a rendering made for another run's spec is refused).
    ``tags`` may carry ``laterality`` / ``view_position`` / ``patient_orientation``
    (the DICOM tags) of pre-read pixels.
    ``view`` forces the view.  A mask (array or file) must have the size of
    the mammogram; only whether it is non-empty routes.
    """

    name: str = ""
    path: str | Path | None = None
    pixels: np.ndarray | None = None
    view: str | None = None
    mask: np.ndarray | None = None
    mask_path: str | Path | None = None
    tags: dict[str, Any] | None = None
    propose: bool = True  # False: the clinician rejected the finder for this view

    @property
    def label(self) -> str:
        """The name shown for this image."""
        if self.name:
            return self.name
        return Path(self.path).name if self.path is not None else "image"


@dataclass
class ViewResult:
    """Everything the UI and the command line show about one view.

    ``cam_*`` are float32 ``(size, size)`` maps in [0, 1] over ``preprocessed``
    (the model's input); ``mask`` is the ROI at that size (0/1) or None.
    ``box`` is the breast crop the input was cut from, as fractions of the
    image: :func:`core.pixels.crop.map_to_full` draws a map back on the whole image.
    ``cell_roi_aware`` is the model that actually served the ROI-aware
    prediction, which differs from the routed cell when ``fallback`` is True;
    ``gap_roi_aware`` is then why the routed cell had no model (also when no
    stand-in could serve).
    """

    image: str
    view: str | None = None
    view_source: ViewSource | None = None
    key: str = ""  # which image of the study it is (case review's CaseView.key), never its name
    roi: bool = False
    cell_roi_aware: str | None = None
    cell_baseline: str | None = None
    fallback: bool = False
    fallback_reason: str | None = None
    gap_roi_aware: CellGap | None = None
    p_malignant_roi_aware: float | None = None
    p_malignant_baseline: float | None = None
    threshold_roi_aware: float | None = None
    threshold_baseline: float | None = None
    cam_roi_aware: np.ndarray | None = None
    cam_baseline: np.ndarray | None = None
    cam_method: str | None = None  # how the maps were made and scaled (Predictor.cam_method)
    preprocessed: np.ndarray | None = None
    mask: np.ndarray | None = None
    box: CropBox | None = None
    roi_source: RoiSource = "none"
    roi_probability: float | None = None
    roi_threshold: float | None = None  # the finder's presence threshold, when it answered
    roi_boxes: list[list[float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def identity(self) -> str:
        """Which image this is: case review's ``key`` (SOP Instance UID or byte hash), else
        the ``image`` the command line was given.  Tables of a study's results are keyed by it."""
        return self.key or self.image

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields (no arrays), as ``--json`` prints them; ``cell`` is ROI-aware."""
        out = {k: getattr(self, k) for k in SUMMARY_KEYS if hasattr(self, k)}
        out["cell"] = self.cell_roi_aware
        out["warnings"] = list(self.warnings)
        return {k: out[k] for k in SUMMARY_KEYS}


@dataclass
class Prepared:
    """A view after reading: the model input and what routes it."""

    index: int
    image: np.ndarray
    view: str
    roi: bool
