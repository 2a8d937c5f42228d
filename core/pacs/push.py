"""Storing a folder of DICOM files in a PACS (STOW-RS), one file at a time.

One request per file so that every refusal names its file and its reason; a
folder also holds CSVs, JPEGs and notes, which are skipped rather than refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import PacsError
from core.pacs.client import PacsClient

# Without these three UIDs a PACS cannot file an instance anywhere.
_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR: an index of files, not an instance


@dataclass
class PushReport:
    """What a push did: files stored, files refused with the reason, files skipped as not DICOM."""

    stored: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _read(path: Path):
    """The file as a dataset, or None when it is not DICOM at all."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(path)
    except (InvalidDicomError, EOFError):
        return None


def _local_problem(ds) -> str | None:
    """Why the PACS would refuse the dataset, said more precisely than its HTTP 400."""
    missing = [k for k in _REQUIRED_UIDS if not str(ds.get(k, "") or "").strip()]
    if missing:
        return f"lacks {', '.join(missing)}, so no PACS can file it"
    return None


def push_folder(folder: str | Path, client: PacsClient) -> PushReport:
    """STOW-RS every DICOM file under ``folder`` (recursively, in name order).

    A file the PACS refuses is reported and the push goes on; a PACS that cannot
    be reached stops it with a PacsError, since no later file would fare better.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PacsError("not a folder", folder)
    return push_files(sorted(p for p in folder.rglob("*") if p.is_file()), client)


def push_files(paths: list[Path], client: PacsClient) -> PushReport:
    """STOW-RS each of ``paths`` that is DICOM, as :func:`push_folder` does."""
    report = PushReport()
    for path in map(Path, paths):
        try:
            ds = _read(path)
        except OSError as err:
            report.refused.append((path, f"cannot be read: {err.strerror or err}"))
            continue
        except Exception as err:  # a DICOM header pydicom cannot parse is a refusal, not a crash
            report.refused.append((path, f"unreadable DICOM ({type(err).__name__}: {err})"))
            continue
        if ds is None or str(ds.get("SOPClassUID", "")) == _MEDIA_DIRECTORY \
                or str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")) == _MEDIA_DIRECTORY:
            report.skipped.append(path)
            continue
        problem = _local_problem(ds) or client.store(ds, str(path))
        if problem:
            report.refused.append((path, problem))
        else:
            report.stored.append(path)
    return report
