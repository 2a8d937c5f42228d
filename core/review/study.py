"""A study under review: its views from the dataset or an upload, what stops a
prediction, what goes to the models, and when a prediction is out of date.

A study is one patient's up to four views; an uploaded one outlives the page's
uploader (a visit to another page), so :class:`UploadedStudy` keeps each file
decoded, once, without its bytes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.datasets.roi import row_mask
from core.errors import MammoError
from core.grid import VIEWS
from core.pixels.spec import PreprocessParams
from core.predict import ViewInput, ViewResult
from core.review.case import CaseView, decode_file, read_upload
from core.wording import count

MAX_VIEWS = 4


class Upload(Protocol):
    """What an uploader hands over (Streamlit's ``UploadedFile`` is one)."""

    file_id: str
    name: str

    def getvalue(self) -> bytes: ...


@dataclass
class UploadedStudy:
    """The uploaded files of one study, by uploader file id, decoded under one spec.

    Only the decoded views are kept: the bytes are read from the uploader when
    a file arrives and dropped once decoded.  ``shown`` are the ids the uploader
    showed last; files it has not shown since the page was opened (a study kept
    across a page switch) stay until :meth:`clear`.  A file that is the same image
    as one already in the study (same :attr:`CaseView.key`) is used once: ``same``
    keeps its file id → ``(its name, the first file's id)``.
    """

    views: dict[str, CaseView] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)
    generation: int = 0  # a new uploader, empty, after each clear
    same: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def uploader_key(self) -> str:
        """The uploader's widget key: the browser keeps an uploader's files, so a cleared
        study gets a new, empty uploader rather than the last patient's files."""
        return f"uploads-{self.generation}"

    def sync(self, files: Sequence[Upload], spec: PreprocessParams) -> None:
        """Add new files (decoded under ``spec``), drop the ones removed from the uploader."""
        now = {f.file_id: f for f in files}
        for gone in self.shown - set(now):
            self.views.pop(gone, None)
            self.same.pop(gone, None)
        self.same = {fid: (name, first) for fid, (name, first) in self.same.items()
                     if first in self.views}  # its first copy removed: read it again below
        for fid, f in now.items():
            if fid not in self.views and fid not in self.same:
                self._add(fid, read_upload(f.name, f.getvalue(), spec))
        if self.shown and not now:  # every file removed by hand: the browser would ignore
            self.generation += 1    # the same files chosen again, so a new uploader
        self.shown = set(now)

    def respec(self, files: Sequence[Upload], spec: PreprocessParams) -> None:
        """Decode again, under ``spec``, the views rendered for another run's spec; a file
        no longer in the uploader (its bytes are gone) must be uploaded again."""
        now = {f.file_id: f for f in files}
        for fid, view in list(self.views.items()):
            if view.source_side is None or view.source_side == spec.source_side:
                continue
            if fid in now:
                self.views[fid] = read_upload(view.name, now[fid].getvalue(), spec)
            else:
                self.views[fid] = CaseView(key=view.key, name=view.name, error=(
                    f"{view.name}: read for another run's preprocessing; remove it and "
                    "upload it again"))

    def detach(self) -> None:
        """The uploader shows no files (the page was left and opened again): keep the
        study, and let the next files the uploader shows add to it."""
        self.shown = set()

    def _add(self, fid: str, view: CaseView) -> None:
        first = next((k for k, v in self.views.items() if v.key == view.key), None)
        if first is None:
            self.views[fid] = view
        else:
            self.same[fid] = (view.name, first)

    def repeated(self, show_ids: bool) -> list[str]:
        """One sentence per file that is an image already in the study."""
        index = {fid: i for i, fid in enumerate(self.views)}
        out = []
        for name, first in self.same.values():
            if first in index:
                ident = name if show_ids else "A file"
                what = "SOP Instance UID" if self.views[first].sop_instance_uid else "bytes"
                out.append(f"{ident} is the same image as "
                           f"{file_label(index[first], self.views[first].name, show_ids)} "
                           f"(same {what}): it is used once.")
        return out

    def clear(self) -> None:
        self.views.clear()
        self.same.clear()
        self.shown = set()
        self.generation += 1

    def study(self) -> list[CaseView]:
        return list(self.views.values())


def too_many(views: Sequence[CaseView]) -> str | None:
    """Why only the first :data:`MAX_VIEWS` files are used, or None."""
    if len(views) <= MAX_VIEWS:
        return None
    return (f"{len(views)} files uploaded: a study has at most {MAX_VIEWS} views; "
            f"the first {MAX_VIEWS} are used.")


# ------------------------------------------------------------------ dataset studies

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


def study_label(study: Mapping[str, Any], index: int, show_ids: bool) -> str:
    """How a dataset study is listed: by id only while identifiers are shown."""
    ident = f"study {study['study_id']}" if show_ids else f"test study {index + 1}"
    return f"{ident} · {count(study['views'], 'view')} · ROI in {study['with_roi']}"


def study_views(df: pd.DataFrame, study_id: str, spec: PreprocessParams) -> list[CaseView]:
    """The views of one dataset study, decoded under the run's spec, with the dataset's
    ROI as a mask."""
    rows = df[df["study_id"].astype(str) == str(study_id)].head(MAX_VIEWS)
    views = []
    for _, row in rows.iterrows():
        path = Path(row["image_path"])
        view = decode_file(str(path), path.name, path, spec)
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


# ------------------------------------------------------------------ before predicting

def file_label(index: int, name: str, show_ids: bool) -> str:
    """How a file is named on screen and in messages: its name only while identifiers are
    shown (a file name can carry a patient's name or id), else its place in the upload."""
    return name if show_ids else f"file {index + 1}"


def hide_names(text: str, views: Sequence[CaseView], show_ids: bool) -> str:
    """``text`` with each view's file name replaced by :func:`file_label` (longest name
    first, so a name inside another is not half replaced); as it is while shown."""
    if show_ids:
        return text
    for i, v in sorted(enumerate(views), key=lambda iv: -len(iv[1].name)):
        if v.name:
            text = text.replace(v.name, file_label(i, v.name, False))
    return text


def _join(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def identity_problem(views: Sequence[CaseView], show_ids: bool) -> str | None:
    """Why these files are not one study, when their DICOM tags name more than one patient
    or study; None when they agree or do not say.  Identifiers only while shown."""
    for attr, tag, what, one in (("patient_id", "PatientID", "patients", "patient"),
                                 ("study_id", "StudyInstanceUID", "studies", "study")):
        groups: dict[str, list[str]] = {}
        for i, v in enumerate(views):
            if v.error is None and getattr(v, attr):
                groups.setdefault(getattr(v, attr), []).append(file_label(i, v.name, show_ids))
        if len(groups) > 1:
            parts = [_join(labels) + (f" ({value})" if show_ids else "")
                     for value, labels in groups.items()]
            return (f"These files are not one study: their {tag} names {len(groups)} different "
                    f"{what} ({'; '.join(parts)}). Remove the other {one}'s files, or "
                    "confirm that they are one study.")
    return None


def view_problems(views: Sequence[CaseView], show_ids: bool = False) -> list[str]:
    """What stops a prediction: too many files, a view missing or given twice (two files
    of one view are two studies, or one view wrongly found), a mask asked for but not
    given; files named by :func:`file_label`."""
    views = list(views)
    problems = []
    if len(views) > MAX_VIEWS:
        problems.append(f"{len(views)} files: a study has at most {MAX_VIEWS} views")
    usable = [(file_label(i, v.name, show_ids), v) for i, v in enumerate(views)
              if v.error is None]
    for label, v in usable:
        if v.view is None:
            problems.append(f"{label}: choose its view (not in the DICOM tags or the file "
                            "name, and not clear from the image)")
    seen: dict[str, str] = {}
    for label, v in usable:
        if v.view and v.view in seen:
            problems.append(f"{v.view} is assigned twice ({seen[v.view]} and {label}): one "
                            "study has one image per view; remove the other study's file or "
                            "correct a view")
        elif v.view:
            seen[v.view] = label
    for label, v in usable:
        if v.roi_choice == "mask" and v.mask_file is None:
            problems.append(f"{v.view or label}: no usable mask yet; upload a binary mask of "
                            f"{v.shape[1]} × {v.shape[0]} px or choose another ROI")
    return problems


def to_inputs(views: Iterable[CaseView]) -> list[ViewInput]:
    """What :meth:`core.predict.Predictor.predict_study` takes (decoded, views fixed)."""
    return [ViewInput(name=v.name, pixels=v.pixels, view=v.view, mask=v.mask,
                      tags={"source_shape": v.shape, "source_side": v.source_side,
                            "patient_orientation": v.patient_orientation},
                      propose=v.propose)
            for v in views if v.error is None and v.pixels is not None]


def unreadable(views: Iterable[CaseView]) -> list[ViewResult]:
    """Results for the files that could not be read, so they show beside the others."""
    return [ViewResult(image=v.name, key=v.key, error=v.error) for v in views if v.error]


def prediction_key(run_path: str | Path, view: CaseView, propose: bool) -> str:
    """What a view's stored result was predicted for: the run, the file, its view, the
    finder switch and the ROI that routes it; a result whose key differs is out of date.
    Per view, so that changing one view's ROI re-predicts that view alone."""
    h = hashlib.sha256(f"{run_path}|{view.key}|{view.view}|{view.propose}|{propose}|".encode())
    if view.mask is not None:
        h.update(np.packbits(view.mask.astype(bool)).tobytes())
    return h.hexdigest()[:16]


class Predicts(Protocol):
    """What :class:`StudyResults` predicts with (:class:`core.predict.Predictor` is one)."""

    def predict_study(self, inputs: Sequence[ViewInput], cam: bool = False,
                      propose: bool = True) -> list[ViewResult]: ...


@dataclass
class StudyResults:
    """Each view's last result under the key it was predicted for (:func:`prediction_key`).

    A view whose ROI or view changed is predicted again on the next Predict; the
    others keep their results (and their Grad-CAM), so editing one ROI neither
    costs four predictions nor silently changes the other views' numbers.
    ``predicted`` and ``kept`` count the views of the last :meth:`predict`.
    """

    by_view: dict[str, tuple[str, ViewResult]] = field(default_factory=dict)
    predicted: int = 0
    kept: int = 0

    def stale(self, run_path: str | Path, views: Iterable[CaseView],
              propose: bool) -> list[CaseView]:
        """The readable views without an up-to-date result."""
        return [v for v in views if v.error is None and v.pixels is not None
                and (self.by_view.get(v.key) or ("",))[0] != prediction_key(run_path, v,
                                                                               propose)]

    def current(self, run_path: str | Path, views: Iterable[CaseView],
                propose: bool) -> list[ViewResult]:
        """The up-to-date results of ``views``, in their order."""
        out = []
        for v in views:
            kept = self.by_view.get(v.key)
            if kept and kept[0] == prediction_key(run_path, v, propose):
                out.append(kept[1])
        return out

    def predict(self, predictor: Predicts, run_path: str | Path, views: Sequence[CaseView],
                propose: bool) -> None:
        """Predict the stale views (with Grad-CAM); forget views no longer in the study."""
        todo = self.stale(run_path, views, propose)
        results = predictor.predict_study(to_inputs(todo), cam=True, propose=propose) if todo \
            else []
        present = {v.key for v in views}
        self.by_view = {k: kept for k, kept in self.by_view.items() if k in present}
        for v, r in zip(todo, results):
            r.key = v.key  # results find their view by identity: two files may share a name
            self.by_view[v.key] = (prediction_key(run_path, v, propose), r)
        self.predicted = len(todo)
        self.kept = len(self.current(run_path, views, propose)) - len(todo)

    def summary(self) -> str:
        """What the last Predict did, in words."""
        views = "view" if self.predicted == 1 else "views"
        kept = (f"; {self.kept} unchanged {'view' if self.kept == 1 else 'views'} kept "
                "from before" if self.kept else "")
        return f"Predicted {self.predicted} {views}{kept}."



def hanging_order(views: Sequence[Any], key: str = "view") -> list[list[Any | None]]:
    """``[[RCC, LCC], [RMLO, LMLO]]`` (None where a view is absent)."""
    by_view = {getattr(v, key): v for v in views if getattr(v, key, None) in VIEWS}
    return [[by_view.get("RCC"), by_view.get("LCC")], [by_view.get("RMLO"), by_view.get("LMLO")]]


def unplaced(views: Sequence[CaseView]) -> tuple[list[CaseView], list[CaseView]]:
    """Files outside the hanging: ``(readable but not placed, unreadable)``; a view
    that is unknown or given twice is not placed."""
    placed = {id(v) for row in hanging_order([v for v in views if v.error is None])
              for v in row if v is not None}
    rest = [v for v in views if id(v) not in placed]
    return [v for v in rest if v.error is None], [v for v in rest if v.error is not None]
