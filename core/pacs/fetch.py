"""A PACS study brought into a folder as files, so it is predicted exactly like files.

The command line reads a study from disk; a study from a PACS is retrieved
(WADO-RS, in its stored transfer syntax), one mammogram per view, and written
as DICOM files named by their SOP Instance UID.  Everything downstream
(rendering, routing, masks named ``IMAGE=...``) then takes the same path as
for files given by hand, and a view keeps its SOP Instance UID as its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.pacs.client import ImageRef, PacsClient, by_view

if TYPE_CHECKING:
    from pydicom import Dataset


@dataclass(frozen=True)
class FetchedStudy:
    """A study retrieved into a folder: one file per view in hanging order, each file's
    header (no pixel data; what results are stored against), and notes on what was
    left out (other series, older repeats of a view)."""

    url: str
    study_uid: str
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    refs: tuple[ImageRef, ...]
    notes: tuple[str, ...] = field(default=())

    def aliases(self) -> dict[str, str]:
        """Names a user may give a file by in ``IMAGE=...`` options: its SOP Instance UID,
        and its view where the tags name one."""
        out = {ref.sop_uid: str(path) for ref, path in zip(self.refs, self.files)}
        out.update({ref.view: str(path) for ref, path in zip(self.refs, self.files) if ref.view})
        return out


def newest_per_view(images: tuple[ImageRef, ...]) -> tuple[list[ImageRef], list[str]]:
    """The image a radiologist would read for each view (the newest; ``images`` come
    newest first) and a note for each view whose older repeats are left out.  Images
    whose view the tags do not name are all kept: the predictor reads their view."""
    chosen: list[ImageRef] = []
    notes: list[str] = []
    for view, repeats in by_view(images).items():
        if not view:
            chosen += repeats
            continue
        chosen.append(repeats[0])
        if len(repeats) > 1:
            notes.append(f"{view}: {len(repeats)} images; the newest ({repeats[0].sop_uid}) is read, "
                         f"{', '.join(r.sop_uid for r in repeats[1:])} left out")
    order = {id(im): k for k, im in enumerate(images)}
    return sorted(chosen, key=lambda im: order[id(im)]), notes


def fetch_study(client: PacsClient, study_uid: str, folder: str | Path) -> FetchedStudy:
    """Retrieve a study's mammograms for presentation into ``folder``.

    Non-image series are left out (:meth:`PacsClient.study_images`), as are older
    repeats of a view; a study with no mammogram, an unknown study or a failed
    retrieval is a :class:`~core.errors.PacsError` naming the URL, and then no
    file is left half-written (all instances are retrieved before any is written).
    """
    from pydicom import dcmread

    from core.errors import PacsError

    found = client.study_images(study_uid)
    chosen, notes = newest_per_view(found.images)
    if not chosen:
        raise PacsError(f"study {study_uid} holds no mammogram for presentation"
                        + (f" ({'; '.join(found.ignored)})" if found.ignored else ""), client.url)
    datasets = client.retrieve_all(chosen)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, headers = [], []
    for ref, ds in zip(chosen, datasets):
        path = folder / ref.sop_uid
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        headers.append(dcmread(path, stop_before_pixels=True))
    return FetchedStudy(client.url, study_uid, tuple(files), tuple(headers), tuple(chosen),
                        tuple(notes) + found.ignored)

