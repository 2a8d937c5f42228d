"""One image of a study under review: decoded once, its view, and the ROI that routes it.

Uploads are written to a :class:`tempfile.TemporaryDirectory` only long enough
to decode them (pydicom and OpenCV read files) and the folder is removed at
once; what a :class:`CaseView` keeps is the decoded 8-bit rendering (and a DICOM's
header without its pixel data), never the file's bytes (an upload may be 200 MB).  Nothing exported carries a file
name, patient or study identifier.
"""
from __future__ import annotations

import hashlib
import io
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.datasets.roi import read_mask
from core.errors import MammoError, MaskError
from core.pixels.orientation import chest_wall
from core.pixels.preprocess import render_source, to_display
from core.pixels.sniff import looks_like_dicom, read_head
from core.pixels.spec import PreprocessParams
from core.pixels.views import ViewEvidence, contradictions, view_evidence
from core.predict import ViewResult

if TYPE_CHECKING:  # pydicom loads with the first DICOM
    from pydicom import Dataset

DISPLAY_SIDE = 512
UPLOAD_TYPES: tuple[str, ...] = ("dcm", "dicom", "dic", "png", "jpg", "jpeg", "pgm", "tif",
                                 "tiff", "bmp")
MASK_TYPES: tuple[str, ...] = ("png", "jpg", "jpeg", "pgm", "tif", "tiff", "bmp")
SOURCE_TEXT: dict[str | None, str] = {"dicom": "DICOM tags", "filename": "file name",
                                      "image": "the image", "manifest": "dataset",
                                      "user": "set by hand", None: "unknown"}
ROI_LABELS: dict[str, str] = {"finder": "ROI finder", "none": "No ROI", "dataset": "Dataset ROI",
                              "mask": "Mask file", "box": "Draw box"}
"""How a view's ROI is given, in the order the editor offers them."""
Box = tuple[int, int, int, int]


@dataclass
class CaseView:
    """One image of the study under review, decoded, with its view and optional ROI.

    ``key`` is the view's identity wherever a widget, a result or an export row
    belongs to it: the SOP Instance UID of a DICOM, else the SHA-256 of the file's
    bytes (a dataset's image: its path); never the file name, which two different
    images can share.
    """

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
    roi_choice: str | None = None  # how the ROI is given: a key of ROI_LABELS
    box: Box | None = None  # a drawn or accepted box (image pixels)
    mask_file: np.ndarray | None = None  # an uploaded mask (0/1 at source_shape)
    propose: bool = True  # the ROI finder may propose an ROI when there is no mask
    dataset_mask: np.ndarray | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    label: str | None = None  # ground truth of a dataset study
    patient_id: str | None = None
    study_id: str | None = None
    sop_instance_uid: str | None = None  # the DICOM's SOPInstanceUID
    header: Dataset | None = None  # the DICOM's header without PixelData (results refer to it)

    @property
    def shape(self) -> tuple[int, int]:
        """The mammogram's full size (what masks, boxes and dataset ROIs refer to)."""
        return tuple(self.source_shape) if self.pixels is not None else (0, 0)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[-120:] or "upload"


def _problem(err: MammoError, name: str) -> str:
    """``name: problem``: a temporary path must never reach the screen."""
    return f"{name}: {getattr(err, 'problem', str(err))}"


def _header(path: Path) -> Dataset | None:
    """A rendered DICOM's header, without its pixel data (kept with the view)."""
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # read once already; a header that fails now is simply not kept
        return None


def decode_file(key: str, name: str, path: Path, spec: PreprocessParams) -> CaseView:
    """A file rendered as the run's ``spec`` renders it, with its view from the DICOM tags,
    the name or the pixels; a bad file becomes a view whose ``error`` says why.  A DICOM
    keeps its header (no pixel data) and SOP Instance UID."""
    view = CaseView(key=key, name=name)
    try:
        img = render_source(path, spec)
    except MammoError as err:
        view.error = _problem(err, name)
        return view
    if img.tags.get("format") == "dicom" and (header := _header(path)) is not None:
        view.header = header
        view.sop_instance_uid = str(header.get("SOPInstanceUID", "") or "").strip() or None
    view.pixels, view.source_shape = img.pixels, tuple(img.source_shape)
    view.source_side = spec.source_side
    view.display = to_display(img.pixels, DISPLAY_SIDE)
    view.patient_orientation = img.tags.get("patient_orientation")
    view.patient_id, view.study_id = img.tags.get("patient_id"), img.tags.get("study_uid")
    side = chest_wall(img.pixels, view.patient_orientation)
    view.chest_on_left = side.on_left
    if side.warning:
        view.warnings.append(side.warning)
    view.evidence = view_evidence(img.tags.get("laterality"), img.tags.get("view_position"),
                                  name, warnings=view.warnings, pixels=img.pixels)
    view.view, view.view_source = view.evidence.view, view.evidence.source
    if looks_like_dicom(read_head(path), path):
        import pydicom

        view.header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        view.sop_instance_uid = str(view.header.get("SOPInstanceUID", "")) or None
    return view


def read_upload(name: str, data: bytes, spec: PreprocessParams) -> CaseView:
    """Decode one uploaded file as the run's spec renders it; the bytes are not kept.
    Its key is its SOP Instance UID, else the SHA-256 of its bytes."""
    with tempfile.TemporaryDirectory(prefix="mammoroute-") as tmp:
        path = Path(tmp) / _safe_name(name)
        path.write_bytes(data)
        view = decode_file(hashlib.sha256(data).hexdigest(), name, path, spec)
    view.key = view.sop_instance_uid or view.key
    return view


def read_dataset(ds: Dataset, name: str, spec: PreprocessParams) -> CaseView:
    """A DICOM already in memory (retrieved from a PACS) decoded exactly as an upload of
    the same file is: written out as a file's bytes and read by :func:`read_upload`."""
    import pydicom

    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return read_upload(name, buffer.getvalue(), spec)


def read_mask_upload(name: str, data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """A mask file for a view: binary, the mammogram's size; ``MaskError`` otherwise."""
    with tempfile.TemporaryDirectory(prefix="mammoroute-") as tmp:
        path = Path(tmp) / _safe_name(name)
        path.write_bytes(data)
        try:
            return read_mask(path, expected_shape=shape)
        except MaskError as err:
            raise MaskError(err.problem, name) from None


# ------------------------------------------------------------------ the view

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


def view_caption(view: CaseView) -> str:
    """Where the view came from, or that it must be chosen."""
    if view.view_source == "user":
        return "View set by hand"
    if view.view:
        return f"View from {SOURCE_TEXT.get(view.view_source, 'nothing')}"
    return "View not found in the tags, the name or the image: choose it"


# ------------------------------------------------------------------ the ROI

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


def roi_options(view: CaseView, has_finder: bool) -> list[str]:
    """The ways this view's ROI can be given; fixes a choice that is no longer offered
    (the dataset's annotation when there is one, else the first option)."""
    options = ((["finder"] if has_finder else []) + ["none"]
               + (["dataset"] if view.dataset_mask is not None else []) + ["mask", "box"])
    if view.roi_choice not in options:
        view.roi_choice = "dataset" if view.dataset_mask is not None else options[0]
    return options


def choose_roi(view: CaseView, choice: str) -> None:
    """How the view's ROI is given (a key of :data:`ROI_LABELS`); the finder may propose
    only when it is the choice.  :func:`update_mask` then takes the ROI it gives."""
    view.roi_choice = choice
    view.propose = choice == "finder"


def update_mask(view: CaseView) -> None:
    """The ROI that routes the view, from its choice: the dataset's, the uploaded mask,
    the drawn box, or None (no ROI, or the finder decides)."""
    given = {"dataset": view.dataset_mask, "mask": view.mask_file,
             "box": box_mask(view.shape, view.box) if view.box else None}
    view.mask = given.get(view.roi_choice or "")


def proposal_box(result: ViewResult) -> list[float] | None:
    """The box around all of the finder's proposed boxes, None when it proposed none."""
    if not (result.roi and result.roi_boxes):
        return None
    boxes = result.roi_boxes
    return [min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes)]


def take_proposal(view: CaseView, box: Sequence[float] | None) -> None:
    """The proposed box becomes the view's own (editable) box; ``box`` None rejects the
    proposal (the view routes as without ROI); an empty box asks the user to draw."""
    if box is None:
        view.roi_choice, view.box = "none", None
        return
    view.roi_choice = "box"
    view.box = tuple(int(round(x)) for x in box) if box[2] > box[0] else None


def scale_box(box: Sequence[float], sx: float, sy: float,
              shape: tuple[int, int] | None = None) -> Box:
    """A box ``(x0, y0, x1, y1)`` from display pixels to image pixels (``sx``, ``sy``:
    image pixels per display pixel), corners ordered; inside ``shape`` (h, w) when given,
    since a drag may start or end beyond the image's edge."""
    xs, ys = (box[0], box[2]), (box[1], box[3])
    out = [int(round(min(xs) * sx)), int(round(min(ys) * sy)),
           int(round(max(xs) * sx)), int(round(max(ys) * sy))]
    if shape is not None:
        h, w = shape
        out = [min(max(c, 0), side) for c, side in zip(out, (w, h, w, h))]
    return tuple(out)
