"""What the DICOM result objects are made from, and what all three share.

A study's results go back into its PACS as new objects that point at the
source images, so a viewer shows them beside the mammograms and an auditor
can tell which run said what.  The objects are built from two things only:
the source pydicom datasets of the study's views, and a plain
:class:`StudyResult` defined here.  Keeping the result structure plain (no
models, no Streamlit, no predictor internals) means the objects can be made
and tested from known numbers, and any front end (app, command line) only
has to fill it in.

Shared rules, enforced by :func:`check_sources` and :func:`new_series`:

* every source belongs to one study, and every view names one of them;
* each object goes into a new series with a fresh Series Instance UID on
  every call, so storing twice makes new series and overwrites nothing;
* patient and study identifiers are copied from the sources by highdicom,
  never typed in here.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes

from core.errors import MammoError
from core.grid import VIEWS

Call = Literal["malignant", "benign"]
GRIDS: dict[str, str] = {"roi_aware": "ROI-aware grid", "baseline": "baseline grid"}
ROI_SOURCES: dict[str, str] = {
    "dataset": "the dataset's annotation",
    "mask": "a mask file",
    "box": "a drawn box",
    "proposed": "proposed by the ROI finder and accepted",
    "none": "no ROI",
}
MANUFACTURER = "MammoRoute"
NOT_FOR_DIAGNOSIS = "research software, not for diagnosis"
SYNTHETIC_NOTE = "SYNTHETIC PHANTOM DATA"
SERIES_NUMBERS: dict[str, int] = {"sr": 9101, "seg": 9102, "sc": 9103}
REQUIRED: tuple[str, ...] = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                             "SOPClassUID", "Rows", "Columns")
"""What a source must carry for an object to point at it."""
COPIED: tuple[str, ...] = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                           "AccessionNumber", "StudyID", "StudyDate", "StudyTime",
                           "ReferringPhysicianName")
"""Patient and study attributes highdicom copies from a source (Type 2: present, possibly empty)."""


class DicomOutError(MammoError):
    """A result that cannot be written as DICOM against the given sources."""


@dataclass(frozen=True)
class GridOutcome:
    """One grid's answer for one view: calibrated P(malignant), the threshold applied, the call.

    ``call`` is None when the grid made none (no probability, or a model
    whose call carries no information); the probability is still recorded.
    """

    probability: float | None
    threshold: float | None
    call: Call | None


@dataclass(frozen=True)
class ViewOutcome:
    """One view's result.  ``roi_mask`` is a bool array the size of the source image's
    pixels (Rows × Columns) or None; ``cam_overlay`` is the Grad-CAM overlay as
    RGB uint8 (any size) or None; ``cam_grid`` says whose Grad-CAM it is."""

    sop_instance_uid: str
    view: str
    cell: str
    fallback: str | None
    roi_aware: GridOutcome
    baseline: GridOutcome
    roi_source: str = "none"
    roi_mask: np.ndarray | None = None
    cam_overlay: np.ndarray | None = None
    cam_grid: str = "roi_aware"


@dataclass(frozen=True)
class BreastCall:
    """A grid's call for a breast and the SOP Instance UID of the view that decided it."""

    call: Call | None
    deciding_view: str | None


@dataclass(frozen=True)
class BreastOutcome:
    laterality: Literal["R", "L"]
    roi_aware: BreastCall
    baseline: BreastCall


@dataclass(frozen=True)
class RunIdentity:
    """Which run answered: its name, a stable identity, MammoRoute's version, and the
    SHA-256 of every model that served (cell name → hex digest)."""

    name: str
    identity: str
    version: str
    model_sha256: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyResult:
    """Everything the SR, SEG and SC objects say about one study."""

    run: RunIdentity
    views: Sequence[ViewOutcome]
    breasts: Sequence[BreastOutcome] = ()
    synthetic: bool = False


def check_sources(result: StudyResult, sources: Sequence[Dataset]) -> dict[str, Dataset]:
    """Sources by SOP Instance UID (with :func:`with_copied`), after checking the result fits them.

    One study only; every view names a source; masks have the source's
    pixel size; overlays are RGB uint8; deciding views are views of the
    result.  An object that pointed at the wrong image would be worse than
    none, so any mismatch is a :class:`DicomOutError`.
    """
    if not sources:
        raise DicomOutError("no source images")
    for ds in sources:
        missing = [k for k in REQUIRED if k not in ds]
        if missing:
            raise DicomOutError(f"a source image lacks {', '.join(missing)}: no object can point "
                                "at it", ds.get("SOPInstanceUID"))
    sources = [with_copied(ds) for ds in sources]
    studies = {str(ds.StudyInstanceUID) for ds in sources}
    if len(studies) != 1:
        raise DicomOutError(f"the sources belong to {len(studies)} studies; results go into one")
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    for v in result.views:
        if v.sop_instance_uid not in by_uid:
            raise DicomOutError(f"view {v.view}: no source image {v.sop_instance_uid}")
        if v.view not in VIEWS:
            raise DicomOutError(f"view {v.view!r} is not one of {', '.join(VIEWS)}")
        if v.roi_source not in ROI_SOURCES:
            raise DicomOutError(f"view {v.view}: ROI source {v.roi_source!r} is not one of "
                                f"{', '.join(ROI_SOURCES)}")
        if v.cam_grid not in GRIDS:
            raise DicomOutError(f"view {v.view}: Grad-CAM grid {v.cam_grid!r} is not one of "
                                f"{', '.join(GRIDS)}")
        src = by_uid[v.sop_instance_uid]
        if v.roi_mask is not None and v.roi_mask.shape != (src.Rows, src.Columns):
            raise DicomOutError(f"view {v.view}: ROI mask {v.roi_mask.shape} differs from the "
                                f"image's {src.Rows} × {src.Columns} pixels")
        overlay = v.cam_overlay
        if overlay is not None and (overlay.dtype != np.uint8 or overlay.ndim != 3
                                    or overlay.shape[2] != 3):
            raise DicomOutError(f"view {v.view}: the Grad-CAM overlay must be RGB uint8")
    side = {v.sop_instance_uid: v.view[0] for v in result.views}
    for b in result.breasts:
        for grid in GRIDS:
            deciding = getattr(b, grid).deciding_view
            if deciding is not None and side.get(deciding) != b.laterality:
                raise DicomOutError(f"breast {b.laterality}: deciding view {deciding} is not "
                                    "one of that breast's views")
    return by_uid


def with_copied(ds: Dataset) -> Dataset:
    """The source, or a copy of it where the :data:`COPIED` attributes it lacks are present
    and empty (DICOM's "unknown"): a file without them still gets its objects, and no
    object carries an identifier the source did not."""
    missing = [k for k in COPIED if k not in ds]
    if not missing:
        return ds
    out = copy.deepcopy(ds)
    for keyword in missing:
        setattr(out, keyword, "")
    return out


def new_series() -> str:
    """A fresh Series Instance UID: every call makes a new series, so nothing is overwritten."""
    return str(hd.UID())


def series_description(what: str, result: StudyResult) -> str:
    """What a series is, which run made it, and that it is not for diagnosis (≤ 64 chars)."""
    text = f"{'SYNTHETIC ' if result.synthetic else ''}MammoRoute {what}, {result.run.name}"
    return text[:64]


def run_parameters(run: RunIdentity) -> dict[str, str]:
    """The run's identity and model hashes as algorithm parameters (name → value)."""
    return {"run": run.name, "run identity": run.identity, "intended use": NOT_FOR_DIAGNOSIS,
            **{f"sha256 {cell}": digest for cell, digest in sorted(run.model_sha256.items())}}


def image_comments(result: StudyResult) -> str:
    """What an image object says of itself in Image Comments: who made it, that it is
    not for diagnosis, and, on phantom studies, that the data are synthetic."""
    return (f"{SYNTHETIC_NOTE}. " if result.synthetic else "") + \
        f"{MANUFACTURER} {result.run.version}, run {result.run.name}: {NOT_FOR_DIAGNOSIS}"


def seg_algorithm(run: RunIdentity) -> hd.AlgorithmIdentificationSequence:
    """The SEG's algorithm identification: MammoRoute, its version, the run and hashes."""
    return hd.AlgorithmIdentificationSequence(
        name=MANUFACTURER, family=codes.DCM.ArtificialIntelligence, version=run.version,
        parameters=run_parameters(run))


def laterality_code(side: str) -> hd.sr.CodedConcept:
    code = codes.SCT.Right if side == "R" else codes.SCT.Left
    return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)
