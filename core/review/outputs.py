"""What leaves case review besides the CSV and JSON: the PDF report and the DICOM
result objects, each made from what the page holds (its results, ROIs, operating
point and Grad-CAM choice), so neither can state what the page did not.

The PDF is the command line's report (:mod:`core.review.pdf`, pictures of
:func:`core.review.board.result_pictures`), so a study gives the same report
from the app and from ``python -m core report``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from pydicom import Dataset

from core.dicomout import DicomOutError, StudyResult
from core.dicomout.from_predict import cam_overlays, study_result
from core.phantom import synthetic_header
from core.predict import ViewResult
from core.review.board import empty_cams, hanging_image, result_pictures
from core.review.case import CaseView
from core.review.export import study_record, view_rois
from core.review.overlay import cam_scale_bar
from core.review.pdf import write_report
from core.review.report import Call
from core.runfolder.layout import RunSummary

PANEL_HEIGHT = 440  # pixels per view in the report's hanging picture, as the page's panels
SC_OPACITY = 0.5  # Grad-CAM blend of a stored overlay while the page shows none


def study_pdf(results: Sequence[ViewResult], views: Sequence[CaseView], run: RunSummary,
              point: str, call_of: Callable[[ViewResult, str], Call | None], *,
              cam_of: str | None, opacity: float, notice: str | None, study: str,
              show_ids: bool) -> bytes:
    """The one-study PDF report of what the page shows: its operating point's calls,
    ``cam_of``'s Grad-CAM (None: off) at ``opacity``, the synthetic-data ``notice``,
    file names only while ``show_ids`` is on."""
    record, _ = study_record(results, views, run, point, call_of, study, show_ids)
    grid, shown = cam_of or "roi_aware", opacity if cam_of else 0.0
    by_key = {v.key: v for v in views}
    names = {r.view or f"image {n}": by_key[r.identity].name
             for n, r in enumerate(results, 1) if r.identity in by_key}
    return write_report(
        record, hanging_image(result_pictures(results, grid, shown, PANEL_HEIGHT), PANEL_HEIGHT),
        notice, cam_of=grid, opacity=shown, scale_bar=cam_scale_bar() if shown > 0 else None,
        empty_cam=empty_cams(results, grid) if shown > 0 else (), identifiers=names,
        show_identifiers=show_ids)


def phantom_study(views: Sequence[CaseView]) -> bool:
    """Whether every view is a phantom DICOM (its header names the phantom): such a study
    is labelled synthetic in the report and the stored objects, uploaded or not."""
    return bool(views) and all(v.header is not None and synthetic_header(v.header) for v in views)


def storable(results: Sequence[ViewResult], views: Sequence[CaseView]) -> bool:
    """Whether the results can go back into a PACS: every predicted view is a DICOM file
    (its header is what the objects point at)."""
    by_key = {v.key: v for v in views}
    done = [r for r in results if r.error is None]
    return bool(done) and all(r.identity in by_key and by_key[r.identity].header is not None
                              for r in done)


def study_dicom(results: Sequence[ViewResult], views: Sequence[CaseView], run: RunSummary,
                call_of: Callable[[ViewResult, str], Call | None], *, cam_of: str | None,
                opacity: float, synthetic: bool) -> tuple[list[Dataset], StudyResult]:
    """``(source headers, result)`` for :func:`core.dicomout.store.store_results`: the
    page's calls, its ROIs in the images' pixels, and ``cam_of``'s Grad-CAM over each
    whole image (the ROI-aware grid's while the page shows none).  The objects say
    "synthetic" when ``synthetic`` or when every image is the phantom's."""
    if not storable(results, views):
        raise DicomOutError("only a study whose every view is a DICOM file can be stored")
    by_key = {v.key: v for v in views}
    done = [r for r in results if r.error is None]
    sources = {r.identity: by_key[r.identity].header for r in done}
    rois = view_rois(done, views)
    grid = cam_of or "roi_aware"
    blend = opacity if cam_of and opacity > 0 else SC_OPACITY
    overlays = cam_overlays(done, sources, lambda key: by_key[key].pixels, rois, grid, blend)
    synthetic = synthetic or phantom_study([by_key[r.identity] for r in done])
    result = study_result(done, sources, run, call_of, rois=rois, overlays=overlays,
                          cam_grid=grid, synthetic=synthetic)
    return list(sources.values()), result
