"""From predictions (:class:`core.predict.ViewResult`) to what the DICOM objects state.

:func:`view_outcome` makes one view's outcome; :func:`study_result` a whole
study's, worded as case review and the report word it (the same
:class:`core.review.report.Call`), with the run's identity and the breasts.

The predictor knows the routing, the probabilities and the tuned
thresholds; it does not know the operating point a reviewer chose, which
models are too weak to call, or how a user's ROI came (box, file, dataset).
Those stay with the caller, passed in as ``outcome_of`` and ``given_as``,
so the DICOM objects say exactly what the screen said.  Only core.predict's
public exports, :func:`core.grid.route_image` and case review's wording are used.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from pydicom import Dataset

from core.dicomout.common import (
    BreastCall,
    BreastOutcome,
    DicomOutError,
    GridOutcome,
    RunIdentity,
    StudyResult,
    ViewOutcome,
)
from core.grid import route_image
from core.predict import ViewResult
from core.review.case import box_mask
from core.review.export import served_weights
from core.review.report import GRIDS, Call, breast_summary
from core.runfolder.layout import RunSummary
from core.version import code_version

OutcomeOf = Callable[[ViewResult, str], GridOutcome]


def tuned_outcome(result: ViewResult, grid: str) -> GridOutcome:
    """A grid's outcome at its own validation-tuned threshold (p ≥ threshold), or no call
    without a probability or threshold.  Callers whose page uses another operating
    point, or withholds weak models' calls, pass their own ``outcome_of``."""
    p, t = getattr(result, f"p_malignant_{grid}"), getattr(result, f"threshold_{grid}")
    if p is None or t is None:
        return GridOutcome(p, t, None)
    return GridOutcome(float(p), float(t), "malignant" if p >= t else "benign")


def roi_source_of(result: ViewResult, given_as: str | None) -> str:
    """The ROI source as the DICOM objects name it: how a user's ROI was given
    (``dataset`` / ``mask`` / ``box``), ``proposed`` for an accepted finder proposal,
    ``none`` when no ROI routed the view."""
    if not result.roi:
        return "none"
    if result.roi_source == "proposed":
        return "proposed"
    return given_as or "mask"


def view_outcome(result: ViewResult, sop_instance_uid: str, *,
                 outcome_of: OutcomeOf = tuned_outcome, roi_mask: np.ndarray | None = None,
                 cam_overlay: np.ndarray | None = None, cam_grid: str = "roi_aware",
                 given_as: str | None = None) -> ViewOutcome:
    """One view's outcome.  ``roi_mask`` must be in the source image's pixels (the
    predictor keeps the ROI only at model-input size), ``cam_overlay`` the RGB image
    the page shows."""
    if result.error is not None or result.view is None:
        raise DicomOutError(f"{result.image}: no result to store ({result.error or 'no view'})")
    fallback = (result.fallback_reason or f"served by {result.cell_roi_aware}") \
        if result.fallback else None
    return ViewOutcome(
        sop_instance_uid=sop_instance_uid, view=result.view,
        cell=route_image(result.view, result.roi, "roi").name, fallback=fallback,
        roi_aware=outcome_of(result, "roi_aware"), baseline=outcome_of(result, "baseline"),
        roi_source=roi_source_of(result, given_as),
        roi_mask=roi_mask.astype(bool) if roi_mask is not None and result.roi else None,
        cam_overlay=cam_overlay, cam_grid=cam_grid)


def page_outcome(call_of: Callable[[ViewResult, str], Call | None]) -> OutcomeOf:
    """The outcome as a page or report words it (:class:`core.review.report.Call`): its
    operating point's threshold, and no call where it withholds one (a phantom-trained
    run on other images, an uninformative model)."""
    def outcome(result: ViewResult, grid: str) -> GridOutcome:
        call = call_of(result, grid)
        if call is None:
            return GridOutcome(getattr(result, f"p_malignant_{grid}"), None, None)
        word = call.word
        return GridOutcome(call.probability, call.threshold,
                           word if word in ("malignant", "benign") else None)  # type: ignore[arg-type]
    return outcome


def run_identity(run: RunSummary, results: Sequence[ViewResult]) -> RunIdentity:
    """Which run answered: its name; as identity the SHA-256 over every trained model's
    weights hash in run.json (the same weights give the same identity, a retrained cell
    another); MammoRoute's version (and commit); the SHA-256 of each model that served
    the study, the ROI finder's included when it proposed."""
    cells = sorted({c for r in results for c in (r.cell_roi_aware, r.cell_baseline) if c})
    served = served_weights(run, cells)
    finder = run.info.get("roi_model") or {}
    if any(r.roi_source == "proposed" for r in results) and finder.get("sha256"):
        served["ROI finder"] = str(finder["sha256"])
    trained = {name: entry.get("sha256") for name, entry in (run.info.get("cells") or {}).items()
               if entry.get("sha256")}
    identity = hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()
    code = code_version()
    version = str(code["version"]) + (f" ({code['commit']})" if code.get("commit") else "")
    return RunIdentity(name=run.name, identity=identity, version=version[:64], model_sha256=served)


def routing_mask(result: ViewResult, source: Dataset, given: np.ndarray | None) -> np.ndarray | None:
    """The ROI that routed the view, in the source image's pixels: the finder's boxes when
    its proposal routed, else the ROI the user gave (``given``), None without an ROI."""
    if not result.roi:
        return None
    if result.roi_source == "proposed":
        shape = (int(source.Rows), int(source.Columns))
        return np.maximum.reduce([box_mask(shape, b) for b in result.roi_boxes]).astype(bool) \
            if result.roi_boxes else None
    return None if given is None else np.asarray(given) > 0


def cam_overlays(results: Sequence[ViewResult], sources: Mapping[str, Dataset],
                 grey_of: Callable[[str], np.ndarray | None],
                 rois: Mapping[str, tuple[str | None, np.ndarray | None]], grid: str,
                 opacity: float) -> dict[str, np.ndarray]:
    """Each predicted view's ``grid`` Grad-CAM over its whole image (``grey_of(identity)``,
    None: no picture) with its routing ROI outlined: the Secondary Captures' pixels, keyed
    by :attr:`ViewResult.identity`.  The app and the command line store through here."""
    from core.review.picture import whole_image_overlay

    out = {}
    for r in results:
        if r.error is not None or getattr(r, f"cam_{grid}") is None:
            continue
        grey = grey_of(r.identity)
        if grey is not None:
            mask = routing_mask(r, sources[r.identity], rois.get(r.identity, (None, None))[1])
            out[r.identity] = whole_image_overlay(r, grey, grid, opacity, mask)[0]
    return out


def study_result(results: Sequence[ViewResult], sources: Mapping[str, Dataset], run: RunSummary,
                 call_of: Callable[[ViewResult, str], Call | None], *,
                 rois: Mapping[str, tuple[str | None, np.ndarray | None]] | None = None,
                 overlays: Mapping[str, np.ndarray] | None = None, cam_grid: str = "roi_aware",
                 synthetic: bool = False) -> StudyResult:
    """A predicted study as the DICOM objects state it, exactly as the page or report
    words it (``call_of``).

    ``sources`` maps a result's ``image`` to its source header; ``rois`` to
    ``(given as, mask in the source's pixels)`` as case review and the report keep it;
    ``overlays`` to the Grad-CAM picture over the whole image (``cam_grid``'s).  Views
    that could not be predicted are left out: there is nothing to state about them.
    """
    rois, overlays = rois or {}, overlays or {}
    outcome_of = page_outcome(call_of)
    done = [r for r in results if r.error is None and r.view is not None]
    views = []
    for r in done:
        if r.identity not in sources:
            raise DicomOutError(f"{r.image}: no DICOM source to store its result against")
        given_as, given = rois.get(r.identity, (None, None))
        views.append(view_outcome(r, str(sources[r.identity].SOPInstanceUID), outcome_of=outcome_of,
                                  roi_mask=routing_mask(r, sources[r.identity], given),
                                  cam_overlay=overlays.get(r.identity), cam_grid=cam_grid,
                                  given_as=given_as))
    uid_of = {r.view: str(sources[r.identity].SOPInstanceUID) for r in done}
    breasts = []
    for row in breast_summary(done, call_of):
        side = "R" if row["breast"] == "right" else "L"
        if not row["views"]:
            continue
        calls = {}
        for grid in GRIDS:
            call, view = row[f"call_{grid}"], row[f"view_{grid}"]
            word = call.word if call is not None else None
            calls[grid] = BreastCall(word if word in ("malignant", "benign") else None,  # type: ignore[arg-type]
                                     uid_of.get(view) if view else None)
        breasts.append(BreastOutcome(side, calls["roi_aware"], calls["baseline"]))  # type: ignore[arg-type]
    return StudyResult(run=run_identity(run, done), views=views, breasts=breasts,
                       synthetic=synthetic)
