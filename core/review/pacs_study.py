"""A study opened from a PACS for case review: found by QIDO-RS, its mammograms listed
by their tags, the newest image of each view retrieved (WADO-RS) and decoded for the
study board, another image of a view (a repeat, an extra view) retrieved when picked.

Decoding goes through :func:`core.review.case.read_dataset`, the upload path, so a
study from the PACS and the same files uploaded hang and predict alike; each view
keeps its source header and SOP Instance UID for results that refer back to it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.grid import VIEWS
from core.pacs.client import ImageRef, PacsClient, StudyImages, StudyRow
from core.pixels.spec import PreprocessParams
from core.review.case import CaseView, read_dataset, set_view
from core.wording import count


def study_table(rows: Sequence[StudyRow], show_ids: bool) -> list[dict[str, Any]]:
    """A QIDO-RS search as table rows; patient name, patient ID and the Study Instance UID
    only while identifiers are shown."""
    out = []
    for row in rows:
        d = row.to_dict(show_identifiers=show_ids)
        if not show_ids:
            d.pop("study_uid")
        d["date"], d["time"] = _date(row.date), _time(row.time)
        out.append(d)
    return out


def study_option(row: StudyRow, index: int, show_ids: bool) -> str:
    """How a found study is offered for opening: date, accession, size; the patient
    only while identifiers are shown."""
    parts = [_date(row.date) or "no date", f"accession {row.accession or '–'}",
             row.description or "", count(row.instances or 0, "instance")]
    who = f"{row.identifiers.name} ({row.identifiers.patient_id}) · " if show_ids else ""
    return f"{index + 1}. {who}" + " · ".join(p for p in parts if p)


def _date(digits: str) -> str:
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if len(digits) >= 8 else digits


def _time(digits: str) -> str:
    return f"{digits[:2]}:{digits[2:4]}:{digits[4:6]}" if len(digits) >= 6 else digits


def image_label(image: ImageRef, newest: bool = False) -> str:
    """One image of a view as a picker offers it: its view, when it was acquired, its
    series and number ("newest" on the first of its view)."""
    stamp = image.acquired
    when = f"{_date(stamp[:8])} {_time(stamp[8:14])}" if stamp else "time not recorded"
    parts = [image.view or "view unknown", f"acquired {when}"]
    if image.series_description:
        parts.append(image.series_description)
    if image.instance_number is not None:
        parts.append(f"#{image.instance_number}")
    return " · ".join(parts) + (" (newest)" if newest else "")


@dataclass
class PacsStudy:
    """A study from a PACS under review: its mammograms by view (newest first), the image
    picked for each of the four places, and the images decoded so far (by SOP Instance UID).

    Images whose view is not one of the four (an extra view such as XCCL, or one the
    tags do not name) hang when picked for a place; ``unplaced`` are images whose tags
    name no view, opened with the study while places are free: the board places them
    by their pixels or asks for their view, as it does for an upload.
    """

    url: str
    study_uid: str
    images: StudyImages
    spec: PreprocessParams
    picked: dict[str, str | None] = field(default_factory=dict)  # place -> SOP Instance UID
    decoded: dict[str, CaseView] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)  # SOP Instance UIDs

    def others(self) -> list[ImageRef]:
        """Images of the study outside the four views (extra or unknown views)."""
        return [im for im in self.images.images if im.view not in VIEWS]

    def candidates(self, place: str) -> list[ImageRef]:
        """What can hang in ``place``: its view's images newest first, then the others."""
        return self.images.by_view().get(place, []) + self.others()

    def pick(self, place: str, sop_uid: str | None) -> None:
        """Hang another image (or none) in ``place``; :meth:`fetch` retrieves it."""
        self.picked[place] = sop_uid

    def fetch(self, client: PacsClient) -> None:
        """Retrieve and decode every picked image not decoded yet (all or nothing: a
        PacsError leaves the study as it was)."""
        refs = {im.sop_uid: im for im in self.images.images}
        todo = [refs[uid] for uid in dict.fromkeys([*self.picked.values(), *self.unplaced])
                if uid and uid not in self.decoded]
        for ref, ds in zip(todo, client.retrieve_all(todo)):
            self.decoded[ref.sop_uid] = read_dataset(ds, f"instance {ref.sop_uid}", self.spec)

    def views(self) -> list[CaseView]:
        """The picked images, in hanging order; one picked for a place other than its own
        view is set to that place by hand (its card then says what its tags give)."""
        out = []
        for place in VIEWS:
            view = self.decoded.get(self.picked.get(place) or "")
            if view is not None:
                if view.error is None and view.view != place:
                    set_view(view, place)
                out.append(view)
        hung = {id(v) for v in out}
        return out + [v for uid in self.unplaced
                      if (v := self.decoded.get(uid)) is not None and id(v) not in hung]


def open_study(client: PacsClient, study_uid: str, spec: PreprocessParams) -> PacsStudy:
    """List the study's mammograms, pick the newest image of each of the four views (and
    images of no named view while places are free), retrieve and decode them; one
    PacsError naming the URL if any step fails."""
    images = client.study_images(study_uid)
    by_view = images.by_view()
    picked = {place: by_view[place][0].sop_uid if by_view.get(place) else None for place in VIEWS}
    free = sum(uid is None for uid in picked.values())
    study = PacsStudy(client.url, study_uid, images, spec, picked,
                      unplaced=[im.sop_uid for im in by_view.get("", [])][:free])
    study.fetch(client)
    return study
