"""Storing a study's results back into its PACS: the SR, the SEGs and the SCs over STOW-RS.

One call makes every object anew (:func:`core.dicomout.result_objects`: new
series, new UIDs), so storing twice adds series and overwrites nothing.  Each
object is its own STOW-RS request, so a refusal names its object and reason
while the others are still stored; a PACS that cannot be reached stops the
whole store with one :class:`~core.errors.PacsError`.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom import Dataset

from core.dicomout import StudyResult, result_objects
from core.pacs.client import PacsClient

KINDS: dict[str, str] = {"SR": "Structured Report", "SEG": "Segmentation", "SC": "Secondary Capture"}
_MODALITY_KIND = {"SR": "SR", "SEG": "SEG", "OT": "SC"}


@dataclass(frozen=True)
class StoredObject:
    """One result object: its kind (SR, SEG, SC), series, instance, encoded size, and the
    PACS's reason when it refused it (None once stored)."""

    kind: str
    series_uid: str
    sop_uid: str
    size: int
    refused: str | None = None


@dataclass
class StoreReport:
    """What a store did, object by object, in the order sent (SR, SEGs, SCs)."""

    url: str
    study_uid: str
    objects: list[StoredObject] = field(default_factory=list)

    @property
    def stored(self) -> list[StoredObject]:
        return [o for o in self.objects if o.refused is None]

    @property
    def refused(self) -> list[StoredObject]:
        return [o for o in self.objects if o.refused is not None]

    def lines(self) -> list[str]:
        """Per series what was stored (kind, instances, size, Series Instance UID), then
        one line per refusal: what a person reads after pressing "Store"."""
        out = []
        for kind in KINDS:
            done = [o for o in self.stored if o.kind == kind]
            if done:
                size = sum(o.size for o in done)
                series = ", ".join(sorted({o.series_uid for o in done}))
                out.append(f"stored {kind}: {len(done)} instance{'s' if len(done) > 1 else ''}, "
                           f"{size / 1024:.1f} KiB, series {series}")
        out += [f"refused {o.kind} {o.sop_uid}: {o.refused}" for o in self.refused]
        return out


def encoded_size(ds: Dataset) -> int:
    """Bytes of the object as a DICOM file (what STOW-RS sends, less the multipart frame)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.tell()


def kind_of(ds: Dataset) -> str:
    """SR, SEG or SC, by the object's modality (SC images are Modality OT)."""
    return _MODALITY_KIND.get(str(ds.get("Modality", "")), str(ds.get("Modality", "")))


def store_results(client: PacsClient, sources: Sequence[Dataset], result: StudyResult
                  ) -> StoreReport:
    """Make the SR, the SEGs (none without an ROI) and the Grad-CAM SCs of ``result`` over
    ``sources`` (their headers suffice) and STOW-RS each into the sources' study."""
    objects = result_objects(result, sources)
    report = StoreReport(client.url, str(sources[0].StudyInstanceUID))
    for ds in objects:
        kind = kind_of(ds)
        refused = client.store(ds, f"the {KINDS.get(kind, kind)} {ds.SOPInstanceUID}")
        report.objects.append(StoredObject(kind, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID),
                                           encoded_size(ds), refused))
    return report
