"""Results back into the study as DICOM: a Structured Report, Segmentations, Secondary Captures.

Pure functions of the source images (pydicom datasets) and a plain
:class:`~core.dicomout.common.StudyResult`; they write nothing and reach no
PACS: storing (STOW-RS) is :mod:`~core.dicomout.store`, and the app or command
line fill the result.  Every call makes new series in the sources' study, and
patient and study identifiers come only from the sources.

- :mod:`~core.dicomout.common`: the result structure, checks, shared parts;
- :mod:`~core.dicomout.sr`: the TID 1500 measurement report;
- :mod:`~core.dicomout.seg`: the routing ROIs as BINARY Segmentations;
- :mod:`~core.dicomout.sc`: the Grad-CAM overlays as derived Secondary Captures;
- :mod:`~core.dicomout.from_predict`: predictions as view outcomes and a whole study's
  result, worded as the page words them (imported on its own, so making objects does not
  load the predictor);
- :mod:`~core.dicomout.store`: the objects stored into a PACS over STOW-RS, one request
  each, with what was stored and refused.
"""
from __future__ import annotations

from collections.abc import Sequence

from pydicom import Dataset

from core.dicomout.common import (
    GRIDS,
    ROI_SOURCES,
    BreastCall,
    BreastOutcome,
    DicomOutError,
    GridOutcome,
    RunIdentity,
    StudyResult,
    ViewOutcome,
)
from core.dicomout.sc import make_scs
from core.dicomout.seg import make_segs
from core.dicomout.sr import make_sr


def result_objects(result: StudyResult, sources: Sequence[Dataset]) -> list[Dataset]:
    """The SR, then the Segmentations (none without an ROI), then the Secondary Captures.

    A source highdicom refuses (a value of the wrong form, a tag it needs) is one
    :class:`DicomOutError` line, as the app and the command line show errors."""
    try:
        return [make_sr(result, sources), *make_segs(result, sources),
                *make_scs(result, sources)]
    except DicomOutError:
        raise
    except (AttributeError, TypeError, ValueError) as err:
        problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DicomOutError(f"the source images cannot carry the result objects: {problem}") \
            from err


__all__ = [
    "GRIDS", "ROI_SOURCES", "BreastCall", "BreastOutcome", "DicomOutError", "GridOutcome",
    "RunIdentity", "StudyResult", "ViewOutcome", "make_scs", "make_segs", "make_sr",
    "result_objects",
]
