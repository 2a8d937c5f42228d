"""One reviewed study, read out: the call per view and per breast, why each view went
where it went, and the audit record a download carries.

Three rules live here so that the page, its downloads and the tests agree:

* **One operating point per page setting** (:data:`OPERATING_POINTS`): every
  call of a study uses either p ≥ 0.5, as the paper, or each model's
  validation-tuned threshold; the page and the export say which.
* **An uninformative model makes no call.**  A threshold at 0 % or 100 %, or
  a validation AUC at chance, means the cell did not learn
  (:func:`core.review.readout.uninformative_reason`); its probability is shown, but
  it neither calls the view nor decides the breast.
* **A breast is decided by one stated rule** (:data:`BREAST_RULE`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from core.errors import MammoError
from core.grid import Cell, CellGap
from core.predict import ViewResult
from core.review.readout import ShownCall, shown_call, uninformative_reason
from core.runfolder.layout import META_FILE, RunSummary, read_json

GRIDS: tuple[str, ...] = ("roi_aware", "baseline")
OPERATING_POINTS: dict[str, str] = {
    "tuned": "each model's validation-tuned threshold",
    "paper": "p ≥ 0.5 for every model, as in the paper",
}
PAPER_THRESHOLD = 0.5
WEAK_REASSURANCE_SHARE = 0.10
"""Below this share of malignant training images, a "without ROI" model's low
score is worded as weak reassurance: it has seen too few cancers to clear one."""
BREAST_RULE = ("A breast is called malignant by a grid when any of its views reaches its "
               "threshold; the number shown is the deciding view's: the one furthest above "
               "its threshold, or, when none reaches it, the one closest below. Views whose "
               "model is uninformative do not decide.")
GIVEN_AS: dict[str, str] = {"dataset": "the dataset's annotation", "mask": "an uploaded mask",
                            "box": "a drawn box"}


def cell_meta(run: RunSummary, cell: str | None) -> Mapping[str, Any]:
    """A cell's ``meta.json``; {} when it cannot be read (the page then says less)."""
    if not cell:
        return {}
    try:
        meta = read_json(run.path / cell / META_FILE)
    except MammoError:
        return {}
    return meta if isinstance(meta, dict) else {}


def applied_threshold(tuned: float | None, point: str) -> float:
    """The threshold a call uses at operating point ``point``."""
    if point not in OPERATING_POINTS:
        raise ValueError(f"operating point {point!r} is not one of {sorted(OPERATING_POINTS)}")
    if point == "paper" or tuned is None:
        return PAPER_THRESHOLD
    return float(tuned)


@dataclass(frozen=True)
class Call:
    """One grid's answer for one view at the page's operating point."""

    probability: float
    threshold: float
    shown: ShownCall
    uninformative: str | None = None  # why the model's call carries no information

    @property
    def word(self) -> str:
        return "no call" if self.uninformative else self.shown.word


def view_call(result: ViewResult, grid: str, meta: Mapping[str, Any], point: str) -> Call | None:
    """The call of ``grid`` for one view, None when that grid gave no probability."""
    p = getattr(result, f"p_malignant_{grid}")
    if p is None:
        return None
    tuned = getattr(result, f"threshold_{grid}")
    t = applied_threshold(tuned, point)
    reason = uninformative_reason(meta, tuned if point == "tuned" else None)
    return Call(float(p), t, shown_call(p, t), reason)


def breast_summary(results: Sequence[ViewResult],
                   call_of: Callable[[ViewResult, str], Call | None]) -> list[dict[str, Any]]:
    """Per breast and grid: the deciding view, its call, by :data:`BREAST_RULE`.

    Views are served by cells with different thresholds, so the highest
    probability need not decide (22 % may reach a 20 % threshold while 24 %
    misses a 30 % one); the deciding view is reported instead.
    """
    rows = []
    for side, name in (("R", "right"), ("L", "left")):
        own = [r for r in results if r.view and r.view.startswith(side) and r.error is None]
        row: dict[str, Any] = {"breast": name, "views": ", ".join(sorted(r.view for r in own))}
        for grid in GRIDS:
            scored = [(c, r.view) for r in own
                      if (c := call_of(r, grid)) is not None and not c.uninformative]
            best = max(scored, key=lambda s: s[0].probability - s[0].threshold, default=None)
            row[f"call_{grid}"] = best[0] if best else None
            row[f"view_{grid}"] = best[1] if best else None
        rows.append(row)
    return rows


def _count_text(counts: Mapping[str, int]) -> str:
    m = int(counts.get("malignant", 0))
    return f"{m} malignant image{'s' if m != 1 else ''}"


GAP_WORDS: dict[str, str] = {
    "skipped": "was skipped in training",
    "failed": "failed in training",
    "pending": "was never trained (the run stopped before it)",
    "running": "did not finish training (the run stopped during it)",
    "cancelled": "was never trained (the run was cancelled)",
}
"""How a cell's ``run.json`` status reads when that cell has no model."""


def _cell_words(cell: Cell) -> str:
    """``the model for LCC views without a finding`` / ``the LCC model trained on all LCC images``."""
    if cell.roi is None:
        return f"the {cell.view} model trained on all {cell.view} images"
    return f"the model for {cell.view} views {'with' if cell.roi else 'without'} a finding"


def _gap_words(gap: CellGap | None) -> str:
    """Why the routed cell had no model, from its recorded status and reason."""
    if gap is None:
        return "has no model"
    words = GAP_WORDS.get(gap.status, f"has no model ({gap.status})")
    return f"{words} ({gap.reason})" if gap.reason else words


def routing_sentence(result: ViewResult, given_as: str | None = None,
                     counts: Mapping[str, int] | None = None) -> str:
    """Why the view went where it went, in one sentence a clinician can act on.

    ``given_as`` names how a user's ROI came (a key of :data:`GIVEN_AS`);
    ``counts`` are the serving ROI-aware cell's training images by label.
    When the routed cell had no model, the sentence names its recorded
    reason and the model that stood in (:data:`core.grid.FALLBACK_ORDER`).
    """
    view = result.view or "this"
    if result.roi_source == "mask" and result.roi:
        why = f"An ROI was given ({GIVEN_AS.get(given_as or '', 'a mask')})"
    elif result.roi_source == "proposed" and result.roi:
        why = f"No ROI was marked; the ROI finder proposed one ({_pct(result.roi_probability)})"
    elif result.roi_source == "proposed":
        why = ("No ROI was marked and the ROI finder found none "
               f"({_pct(result.roi_probability)} that one is present)")
    elif result.roi_source == "mask":
        why = "The given mask is empty, so no ROI"
    else:
        why = "No ROI marked and none proposed"
    kind = "with a finding" if result.roi else "without a finding"
    routed = f"the model for {view} views {kind}"
    if result.fallback and result.cell_roi_aware:
        text = (f"{why}: {routed} {_gap_words(result.gap_roi_aware)}; "
                f"{_cell_words(Cell.parse(result.cell_roi_aware))} read it instead")
    elif result.cell_roi_aware is None:
        if result.gap_roi_aware is None:
            return f"{why}: no ROI-aware model could read it"
        return (f"{why}: {routed} {_gap_words(result.gap_roi_aware)} and no stand-in for "
                f"{view} was trained, so no ROI-aware model could read it.")
    else:
        text = f"{why}: read by {routed}"
        if counts and not result.roi:
            total = sum(int(v) for v in counts.values())
            text += f", which saw {_count_text(counts)} of {total} in training"
            if total and int(counts.get("malignant", 0)) / total < WEAK_REASSURANCE_SHARE:
                text += "; treat a low score as weak reassurance"
    return text + "."


def _pct(p: float | None) -> str:
    return "–" if p is None else f"{100 * float(p):.0f} %"


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
    import cv2

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
                  scrub: Sequence[str] = (), when: datetime | None = None) -> dict[str, Any]:
    """What a download holds: run, weights, date, operating point, and per view its ROI
    (source and coordinates) and both grids' calls.

    ``roi`` maps a result's ``image`` to ``(given_as, mask at the image's size)``;
    every text has the names in ``scrub`` (file names) replaced by the view.
    """
    when = when or datetime.now().astimezone()
    views = []
    for r in results:
        label = r.view or "unknown view"
        names = [r.image, *scrub]
        given_as, mask = roi.get(r.image, (None, None))
        row: dict[str, Any] = {
            "view": label, "roi": bool(r.roi), "roi_source": r.roi_source,
            "roi_given_as": given_as if r.roi_source == "mask" else None,
            "roi_probability": r.roi_probability, "roi_boxes": roi_boxes(r, mask),
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
    return {
        "run": run.name, "arch": run.info.get("arch"), "img_size": run.info.get("img_size"),
        "trained_on_synthetic_data": run.synthetic,
        "weights_sha256": served_weights(run, sorted(set(filter(None, cells)))),
        "roi_finder_sha256": finder,
        "date": when.isoformat(timespec="seconds"),
        "operating_point": {"name": point, "rule": OPERATING_POINTS[point]},
        "breast_rule": BREAST_RULE, "views": views,
        "breasts": [{"breast": b["breast"], "views": b["views"],
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


def export_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The CSV form of :func:`export_record`: one row per view, run facts repeated."""
    head = {"run": record["run"], "date": record["date"],
            "operating_point": record["operating_point"]["name"],
            "trained_on_synthetic_data": record["trained_on_synthetic_data"]}
    rows = []
    for v in record["views"]:
        row = {**head, **v, "roi_boxes": ";".join(",".join(map(str, b)) for b in v["roi_boxes"])}
        for grid in GRIDS:
            row[f"weights_sha256_{grid}"] = record["weights_sha256"].get(v[f"cell_{grid}"] or "")
        rows.append(row)
    return rows


def export_name(study: str, when: datetime, ext: str) -> str:
    """``mammoroute-<study>-<YYYY-MM-DD>.<ext>``; ``study`` must already be free of ids."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in study).strip("-")
    return f"mammoroute-{safe or 'study'}-{when:%Y-%m-%d}.{ext}"
