"""What a download of a reviewed study holds, and the two files (CSV and JSON) ready to
hand to a browser: run, weights, date, operating point, and per view its ROI and calls.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cv2
import numpy as np
import pandas as pd

from core.predict import ViewResult
from core.review.case import SOURCE_TEXT, CaseView
from core.review.report import (
    BREAST_RULE,
    GRIDS,
    OPERATING_POINTS,
    Call,
    breast_summary,
    missing_views,
    routing_sentence,
    views_read,
)
from core.runfolder.layout import RunSummary
from core.version import code_version


def roi_boxes(result: ViewResult, mask: np.ndarray | None) -> list[list[int]]:
    """The ROI that routed the view, as ``[[x0, y0, x1, y1], ...]`` in the image's pixels.

    A given mask contributes the box of each of its connected regions; a
    proposal, the finder's boxes; a view routed without ROI, none.
    """
    if not result.roi:
        return []
    if result.roi_source == "proposed":
        return [[int(round(v)) for v in b] for b in result.roi_boxes]
    if mask is None:
        return []
    n, _, stats, _ = cv2.connectedComponentsWithStats((np.asarray(mask) > 0).astype(np.uint8))
    return [[int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, _ in stats[1:n]]


def served_weights(run: RunSummary, cells: Sequence[str | None]) -> dict[str, str]:
    """SHA-256 of each serving cell's weights, as run.json records them."""
    entries = run.info.get("cells") or {}
    return {c: str((entries.get(c) or {}).get("sha256", "")) for c in cells if c}


def _scrub(text: str | None, names: Sequence[str], label: str) -> str | None:
    """``text`` with every file name in ``names`` replaced by the view's label."""
    for name in names:
        if text and name:
            text = text.replace(name, label)
    return text


def export_record(results: Sequence[ViewResult], run: RunSummary, point: str,
                  call_of: Callable[[ViewResult, str], Call | None],
                  roi: Mapping[str, tuple[str | None, np.ndarray | None]],
                  scrub: Sequence[str] = (), when: datetime | None = None,
                  about: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What a download holds: the code, run, weights, date, operating point and the
    finder's threshold, and per view its size, how its view was found, its ROI (source and
    coordinates) and both grids' calls, probabilities unrounded (an auditor recomputes).

    ``roi`` maps a result's ``key`` (its ``image`` when it has none) to ``(given_as, mask
    at the image's size)``; ``about`` maps it to facts of the file (:func:`view_facts`);
    every text has the names in ``scrub`` (file names) replaced by the view.
    """
    when = when or datetime.now().astimezone()
    views = []
    for r in results:
        label = r.view or "unknown view"
        names = [r.image, *scrub]
        given_as, mask = roi.get(r.identity, (None, None))
        row: dict[str, Any] = {
            "view": label, **(about or {}).get(r.identity, {}), "roi": bool(r.roi), "roi_source": r.roi_source,
            "roi_given_as": given_as if r.roi_source == "mask" else None,
            "roi_probability": r.roi_probability, "roi_threshold": r.roi_threshold,
            "roi_boxes": roi_boxes(r, mask),
            "fallback": bool(r.fallback), "fallback_reason": _scrub(r.fallback_reason, names, label),
        }
        for grid in GRIDS:
            call = call_of(r, grid)
            row[f"cell_{grid}"] = getattr(r, f"cell_{grid}")
            row[f"p_malignant_{grid}"] = None if call is None else call.probability
            row[f"threshold_{grid}"] = None if call is None else call.threshold
            row[f"call_{grid}"] = None if call is None else call.word
            row[f"uninformative_{grid}"] = None if call is None else call.uninformative
        row["why"] = _scrub(routing_sentence(r, given_as), names, label)
        row["warnings"] = "; ".join(_scrub(w, names, label) or "" for w in r.warnings)
        row["error"] = _scrub(r.error, names, label)
        views.append(row)
    cells = [c for r in results for c in (r.cell_roi_aware, r.cell_baseline)]
    finder = (run.info.get("roi_model") or {}).get("sha256") \
        if any(r.roi_source == "proposed" for r in results) else None
    code = code_version()
    return {
        "mammoroute_version": code["version"], "mammoroute_commit": code["commit"],
        "run": run.name, "arch": run.info.get("arch"), "img_size": run.info.get("img_size"),
        "trained_on_synthetic_data": run.synthetic,
        "weights_sha256": served_weights(run, sorted(set(filter(None, cells)))),
        "roi_finder_sha256": finder, "roi_finder_threshold": finder_threshold(run),
        "date": when.isoformat(timespec="seconds"),
        "operating_point": {"name": point, "rule": OPERATING_POINTS[point]},
        "breast_rule": BREAST_RULE, "views": views,
        "breasts": [{"breast": b["breast"], "views": b["views"],
                     "missing_views": ", ".join(missing_views(b["breast"], b["views"])),
                     "views_read": views_read(b["breast"], b["views"]),
                     **{f"{k}_{g}": _breast_value(b, g, k)
                        for g in GRIDS for k in ("call", "view", "p", "threshold")}}
                    for b in breast_summary(results, call_of)],
    }


def _breast_value(row: Mapping[str, Any], grid: str, key: str) -> Any:
    call: Call | None = row.get(f"call_{grid}")
    if key == "view":
        return row.get(f"view_{grid}")
    if call is None:
        return None
    return {"call": call.word, "p": call.probability, "threshold": call.threshold}[key]


def finder_threshold(run: RunSummary) -> float | None:
    """The presence threshold of the run's ROI finder, None without a finder."""
    entry = run.info.get("roi_model") or {}
    value = entry.get("threshold") if entry.get("status") == "done" else None
    return None if value is None else float(value)


def view_facts(view: CaseView) -> dict[str, Any]:
    """What an auditor needs of a file beside its result: its size (the ROI boxes are in
    its pixels) and how its view was found."""
    h, w = view.shape
    return {"width": int(w), "height": int(h), "view_source": view.view_source,
            "view_found_by": SOURCE_TEXT.get(view.view_source, "unknown")}


RECORD_COLUMNS: tuple[str, ...] = (
    "mammoroute_version", "mammoroute_commit", "run", "date", "trained_on_synthetic_data",
    "roi_finder_threshold")
"""The record's facts repeated on every CSV row."""


def export_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The CSV form of :func:`export_record`: one row per view, then one per breast
    (``level``), the record's facts repeated on each."""
    head = {**{k: record.get(k) for k in RECORD_COLUMNS},
            "operating_point": record["operating_point"]["name"]}
    rows = []
    for v in record["views"]:
        row = {"level": "view", **head, **v,
               "roi_boxes": ";".join(",".join(map(str, b)) for b in v["roi_boxes"])}
        for grid in GRIDS:
            row[f"weights_sha256_{grid}"] = record["weights_sha256"].get(v[f"cell_{grid}"] or "")
        rows.append(row)
    for b in record["breasts"]:
        rows.append({"level": "breast", **head, **b})
    return rows


def export_name(study: str, when: datetime, ext: str) -> str:
    """``mammoroute-<study>-<YYYY-MM-DD>.<ext>``; ``study`` must already be free of ids."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in study).strip("-")
    return f"mammoroute-{safe or 'study'}-{when:%Y-%m-%d}.{ext}"


@dataclass(frozen=True)
class Download:
    """One file a browser saves: its name, its text and its type."""

    name: str
    text: str
    mime: str


def view_rois(results: Sequence[ViewResult], views: Sequence[CaseView]
              ) -> dict[str, tuple[str | None, np.ndarray | None]]:
    """Each result's ROI as case review keeps it: ``(how it was given, mask at the image's
    size)``, keyed by the view's identity (``key``: SOP Instance UID or byte hash)."""
    by_key = {v.key: v for v in views}
    return {r.identity: (by_key[r.identity].roi_choice, by_key[r.identity].mask)
            for r in results if r.identity in by_key}


def study_record(results: Sequence[ViewResult], views: Sequence[CaseView], run: RunSummary,
                 point: str, call_of: Callable[[ViewResult, str], Call | None],
                 study: str, show_ids: bool, when: datetime | None = None
                 ) -> tuple[dict[str, Any], str]:
    """``(record, study name)``: :func:`export_record` of a study under review, free of
    file names.  ``study`` names the study without identifiers ("test-study-3",
    "upload"); while ``show_ids`` is on, a study id shared by every view names it
    instead and is recorded."""
    when = when or datetime.now().astimezone()
    record = export_record(results, run, point, call_of, view_rois(results, views),
                           scrub=[v.name for v in views], when=when,
                           about={v.key: view_facts(v) for v in views if v.error is None})
    study = study_name(views, study, show_ids)
    if show_ids:
        record["study_id"] = study
    return record, study


def study_name(views: Sequence[CaseView], study: str, show_ids: bool) -> str:
    """What a download is named after: ``study``, or while ``show_ids`` is on the study
    id every view shares."""
    ids = {v.study_id for v in views if v.study_id} if show_ids else set()
    return ids.pop() if len(ids) == 1 else study


def study_downloads(results: Sequence[ViewResult], views: Sequence[CaseView], run: RunSummary,
                    point: str, call_of: Callable[[ViewResult, str], Call | None],
                    study: str, show_ids: bool, when: datetime | None = None
                    ) -> tuple[Download, Download]:
    """CSV and JSON an auditor can trace (:func:`study_record`)."""
    when = when or datetime.now().astimezone()
    record, study = study_record(results, views, run, point, call_of, study, show_ids, when)
    return (Download(export_name(study, when, "csv"),
                     pd.DataFrame(export_rows(record)).to_csv(index=False), "text/csv"),
            Download(export_name(study, when, "json"), json.dumps(record, indent=2),
                     "application/json"))
