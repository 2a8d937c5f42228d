"""Case review without Streamlit widgets: read uploads, build ROI masks, summarise results.

Uploads are written to a :class:`tempfile.TemporaryDirectory` only long enough
to decode them (pydicom and OpenCV read files) and the folder is removed at
once; what stays in the session is the decoded 8-bit image.  Nothing exported
carries a file name, patient or study identifier.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.datasets.roi import read_mask, row_mask
from core.errors import MammoError, MaskError
from core.grid import VIEWS
from core.pixels.orientation import chest_wall
from core.pixels.preprocess import render_source, to_display
from core.pixels.spec import PreprocessParams
from core.pixels.views import ViewEvidence, contradictions, view_evidence
from core.predict import ViewInput

MAX_VIEWS = 4
DISPLAY_SIDE = 512
UPLOAD_TYPES: tuple[str, ...] = ("dcm", "dicom", "dic", "png", "jpg", "jpeg", "pgm", "tif",
                                 "tiff", "bmp")
SOURCE_TEXT: dict[str | None, str] = {"dicom": "DICOM tags", "filename": "file name",
                                      "image": "the image", "manifest": "dataset",
                                      "user": "set by hand", None: "unknown"}


@dataclass
class CaseView:
    """One image of the study under review, decoded, with its view and optional ROI."""

    key: str
    name: str
    pixels: np.ndarray | None = None  # uint8 rendering under the run's spec (render_source)
    source_side: int | None = None  # the spec's source side the pixels were rendered at
    source_shape: tuple[int, int] = (0, 0)  # the mammogram's full size: masks and boxes are at it
    display: np.ndarray | None = None  # uint8, aspect kept, long side DISPLAY_SIDE
    view: str | None = None
    view_source: str | None = None
    evidence: ViewEvidence = field(default_factory=ViewEvidence)  # tags, name, pixels
    patient_orientation: tuple[str, ...] | None = None  # the DICOM tag, when the file has it
    chest_on_left: bool | None = None  # the chest-wall side the model input and hanging use
    mask: np.ndarray | None = None  # 0/1 at source_shape: the ROI that routes the view
    roi_choice: str | None = None  # how the ROI is given: finder, none, dataset, mask, box
    box: tuple[int, int, int, int] | None = None  # a drawn or accepted box (image pixels)
    mask_file: np.ndarray | None = None  # an uploaded mask (0/1 at source_shape)
    propose: bool = True  # the ROI finder may propose an ROI when there is no mask
    dataset_mask: np.ndarray | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    label: str | None = None  # ground truth of a dataset study
    patient_id: str | None = None
    study_id: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """The mammogram's full size (what masks, boxes and dataset ROIs refer to)."""
        return tuple(self.source_shape) if self.pixels is not None else (0, 0)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[-120:] or "upload"


def _problem(err: MammoError, name: str) -> str:
    """``name: problem``: a temporary path must never reach the screen."""
    return f"{name}: {getattr(err, 'problem', str(err))}"


def _decoded(key: str, name: str, path: Path, spec: PreprocessParams) -> CaseView:
    view = CaseView(key=key, name=name)
    try:
        img = render_source(path, spec)
    except MammoError as err:
        view.error = _problem(err, name)
        return view
    view.pixels, view.source_shape = img.pixels, tuple(img.source_shape)
    view.source_side = spec.source_side
    view.display = to_display(img.pixels, DISPLAY_SIDE)
    view.patient_orientation = img.tags.get("patient_orientation")
    side = chest_wall(img.pixels, view.patient_orientation)
    view.chest_on_left = side.on_left
    if side.warning:
        view.warnings.append(side.warning)
    view.evidence = view_evidence(img.tags.get("laterality"), img.tags.get("view_position"),
                                  name, warnings=view.warnings, pixels=img.pixels)
    view.view, view.view_source = view.evidence.view, view.evidence.source
    return view


def set_view(view: CaseView, chosen: str | None) -> None:
    """A view chosen by hand; :func:`view_conflicts` then says what it contradicts."""
    if chosen != view.view:  # back to what the file says: its own source again
        found = chosen is not None and chosen == view.evidence.view
        view.view, view.view_source = chosen, view.evidence.source if found else "user"


def view_conflicts(view: CaseView) -> list[str]:
    """What the file's tags, name or pixels say against a view set by hand."""
    if view.view is None or view.view_source != "user":
        return []
    return contradictions(view.view, view.evidence)


def read_upload(name: str, data: bytes, spec: PreprocessParams,
                key: str | None = None) -> CaseView:
    """Decode one uploaded file as the run's spec renders it (``spec``: the run's
    :class:`~core.pixels.spec.PreprocessParams`); its view from DICOM tags, the file
    name or the pixels (maybe None)."""
    key = key or hashlib.sha256(data).hexdigest()[:16]
    with tempfile.TemporaryDirectory(prefix="mammoroute-") as tmp:
        path = Path(tmp) / _safe_name(name)
        path.write_bytes(data)
        return _decoded(key, name, path, spec)


def read_mask_upload(name: str, data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """A mask file for a view: binary, the mammogram's size; ``MaskError`` otherwise."""
    with tempfile.TemporaryDirectory(prefix="mammoroute-") as tmp:
        path = Path(tmp) / _safe_name(name)
        path.write_bytes(data)
        try:
            return read_mask(path, expected_shape=shape)
        except MaskError as err:
            raise MaskError(err.problem, name) from None


def box_mask(shape: tuple[int, int], box: Sequence[float]) -> np.ndarray:
    """A 0/1 mask of ``shape`` with the box ``(x0, y0, x1, y1)`` (image pixels) filled."""
    h, w = shape
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    x0, y0 = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1))
    x1, y1 = int(np.clip(np.ceil(x1), x0 + 1, w)), int(np.clip(np.ceil(y1), y0 + 1, h))
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def study_choices(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Test-split studies of a manifest (complete four-view studies first): id, number of
    views, how many with ROI, how many malignant."""
    test = df[df["split"] == "test"]
    out = []
    for study_id, rows in test.groupby("study_id", sort=True):
        out.append({"study_id": str(study_id), "views": int(len(rows)),
                    "with_roi": int(rows["roi"].sum()),
                    "malignant": int((rows["label"] == "malignant").sum())})
    return sorted(out, key=lambda s: -s["views"])


def study_views(df: pd.DataFrame, study_id: str, spec: PreprocessParams) -> list[CaseView]:
    """The views of one dataset study, decoded under the run's spec, with the dataset's
    ROI as a mask."""
    rows = df[df["study_id"].astype(str) == str(study_id)].head(MAX_VIEWS)
    views = []
    for _, row in rows.iterrows():
        path = Path(row["image_path"])
        view = _decoded(str(path), path.name, path, spec)
        view.view, view.view_source = str(row["view_name"]), "manifest"
        view.label = str(row["label"])
        view.patient_id, view.study_id = str(row["patient_id"]), str(row["study_id"])
        if view.pixels is not None:
            record = {k: ("" if pd.isna(row.get(k)) else row.get(k))
                      for k in ("mask_path", "roi_shapes")}
            try:
                view.dataset_mask = row_mask(record, view.shape)
            except MammoError as err:
                view.warnings.append(f"dataset ROI not readable ({err}); routed as without ROI")
            view.mask = view.dataset_mask
        views.append(view)
    return views


def view_problems(views: Iterable[CaseView]) -> list[str]:
    """What stops a prediction: too many files, a view missing or given twice."""
    views = list(views)
    problems = []
    if len(views) > MAX_VIEWS:
        problems.append(f"{len(views)} files: a study has at most {MAX_VIEWS} views")
    usable = [v for v in views if v.error is None]
    for v in usable:
        if v.view is None:
            problems.append(f"{v.name}: choose its view (not in the DICOM tags or the file name, "
                            "and not clear from the image)")
    seen: dict[str, str] = {}
    for v in usable:
        if v.view and v.view in seen:
            problems.append(f"{v.view} is assigned twice ({seen[v.view]} and {v.name})")
        elif v.view:
            seen[v.view] = v.name
    return problems


def to_inputs(views: Iterable[CaseView]) -> list[ViewInput]:
    """What :meth:`core.predict.Predictor.predict_study` takes (decoded, views fixed)."""
    return [ViewInput(name=v.name, pixels=v.pixels, view=v.view, mask=v.mask,
                      tags={"source_shape": v.shape, "source_side": v.source_side,
                            "patient_orientation": v.patient_orientation},
                      propose=v.propose)
            for v in views if v.error is None and v.pixels is not None]


def signature(views: Iterable[CaseView]) -> str:
    """Changes whenever anything that would change the prediction changes."""
    h = hashlib.sha256()
    for v in views:
        h.update(f"{v.key}|{v.view}|{v.propose}|".encode())
        if v.mask is not None:
            h.update(np.packbits(v.mask.astype(bool)).tobytes())
    return h.hexdigest()[:16]


def hanging_order(views: Sequence[Any], key: str = "view") -> list[list[Any | None]]:
    """``[[RCC, LCC], [RMLO, LMLO]]`` (None where a view is absent)."""
    by_view = {getattr(v, key): v for v in views if getattr(v, key, None) in VIEWS}
    return [[by_view.get("RCC"), by_view.get("LCC")], [by_view.get("RMLO"), by_view.get("LMLO")]]
