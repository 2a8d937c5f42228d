"""One reviewed study, read out: the call per view and per breast, and why each view went
where it went (what a download carries is :mod:`core.review.export`).

Three rules live here so that the page, its downloads and the tests agree:

* **One operating point per page setting** (:data:`OPERATING_POINTS`): every
  call of a study uses either p ≥ 0.5, as the paper, or each model's
  validation-tuned threshold; the page and the export say which.
* **An uninformative model makes no call.**  A threshold at 0 % or 100 %, or
  a validation AUC at chance, means the cell did not learn
  (:func:`core.review.readout.uninformative_reason`); its probability is shown, but
  it neither calls the view nor decides the breast.
* **A breast is decided by one stated rule** (:data:`BREAST_RULE`).
* **Models trained on phantoms make no call on other images**
  (:func:`is_demonstration`): their probabilities are shown as a
  demonstration of the software, never as a reading of a real exam.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import MammoError
from core.grid import Cell, CellGap
from core.predict import ViewResult
from core.review.readout import ShownCall, shown_call, uninformative_reason
from core.runfolder.layout import META_FILE, METRICS_FILE, RunSummary, read_json
from core.wording import count

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
DEMONSTRATION_TEXT = "demonstration, not a reading (models trained on synthetic images)"


def is_demonstration(run_synthetic: bool, images_synthetic: bool) -> bool:
    """Whether a study's calls are withheld: models that saw only phantoms reading images
    that are not phantoms (an upload: real until shown otherwise) have learnt nothing
    about them, and a coloured "malignant" would read as a finding."""
    return bool(run_synthetic) and not images_synthetic


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


def measured_calibration(run: RunSummary) -> Mapping[str, Any] | None:
    """The ``calibration`` block of the run's ``metrics.json`` (how far its served
    probabilities were off on its test split); None when the run was not evaluated."""
    try:
        metrics = read_json(run.path / METRICS_FILE)
    except MammoError:
        return None
    block = metrics.get("calibration") if isinstance(metrics, dict) else None
    return block if isinstance(block, dict) else None


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
    demonstration: bool = False  # phantom-trained models on other images (is_demonstration)

    @property
    def word(self) -> str:
        return "no call" if self.uninformative or self.demonstration else self.shown.word


def view_call(result: ViewResult, grid: str, meta: Mapping[str, Any], point: str,
              demonstration: bool = False) -> Call | None:
    """The call of ``grid`` for one view, None when that grid gave no probability;
    ``demonstration`` (:func:`is_demonstration`) withholds the call, not the number."""
    p = getattr(result, f"p_malignant_{grid}")
    if p is None:
        return None
    tuned = getattr(result, f"threshold_{grid}")
    t = applied_threshold(tuned, point)
    reason = uninformative_reason(meta, tuned if point == "tuned" else None)
    return Call(float(p), t, shown_call(p, t), reason, demonstration)


class StudyCalls:
    """Every call of one reviewed study at one operating point, each serving cell's
    ``meta.json`` read once; callable as the ``call_of`` the functions below take.
    ``demonstration`` (:func:`is_demonstration`) withholds every call of the study."""

    def __init__(self, run: RunSummary, point: str, demonstration: bool = False) -> None:
        self.run, self.point, self.demonstration = run, point, demonstration
        self._metas: dict[str | None, Mapping[str, Any]] = {}

    def meta(self, cell: str | None) -> Mapping[str, Any]:
        if cell not in self._metas:
            self._metas[cell] = cell_meta(self.run, cell)
        return self._metas[cell]

    def __call__(self, result: ViewResult, grid: str) -> Call | None:
        return view_call(result, grid, self.meta(getattr(result, f"cell_{grid}")), self.point,
                         self.demonstration)

    def train_counts(self, result: ViewResult) -> Mapping[str, int] | None:
        """The serving ROI-aware cell's training images by label, when recorded."""
        counts = (self.meta(result.cell_roi_aware).get("counts") or {}).get("train")
        return counts if isinstance(counts, dict) else None


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


def missing_views(breast: str, views: str) -> list[str]:
    """The breast's standard views (CC, MLO) that ``views`` ("LCC, LMLO") does not hold."""
    side = "R" if breast == "right" else "L"
    read = {v.strip() for v in views.split(",")}
    return [f"{side}{p}" for p in ("CC", "MLO") if f"{side}{p}" not in read]


def views_read(breast: str, views: str) -> str:
    """Which of a breast's two views were read, naming the one missing: a breast read
    from one view is a weaker answer than one read from both, and a reader must see it."""
    read = [v.strip() for v in views.split(",") if v.strip()]
    missing = missing_views(breast, views)
    if not read:
        return "none read"
    if not missing:
        return ", ".join(read)
    return f"{', '.join(read)} only; {' and '.join(missing)} missing"


def breast_table(results: Sequence[ViewResult],
                 call_of: Callable[[ViewResult, str], Call | None]) -> list[dict[str, str]]:
    """:func:`breast_summary` as text rows: the deciding view's numbers and each grid's call."""
    rows = []
    for b in breast_summary(results, call_of):
        row = {"breast": b["breast"], "views": views_read(b["breast"], b["views"])}
        for grid, name in (("roi_aware", "ROI-aware"), ("baseline", "baseline")):
            call: Call | None = b[f"call_{grid}"]
            row[f"{name}: deciding view"] = "–" if call is None else (
                f"{call.shown.probability} ({b[f'view_{grid}']}, demonstration)"
                if call.demonstration else
                f"{call.shown.probability} {call.shown.relation} {call.shown.threshold} "
                f"({b[f'view_{grid}']})")
        for grid, name in (("roi_aware", "ROI-aware"), ("baseline", "baseline")):
            row[f"{name} call"] = b[f"call_{grid}"].word if b[f"call_{grid}"] else "–"
        rows.append(row)
    return rows


def _count_text(counts: Mapping[str, int]) -> str:
    m = int(counts.get("malignant", 0))
    return count(m, "malignant image")


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
        why = f"No ROI was marked; the ROI finder proposed one ({finder_words(result)})"
    elif result.roi_source == "proposed":
        why = f"No ROI was marked and the ROI finder found none ({finder_words(result)})"
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


def finder_words(result: ViewResult) -> str:
    """The finder's calibrated presence probability beside its threshold, worded so that
    the two numbers never contradict its verdict (a 99.998 % below a 99.999 % threshold
    must not read "100 %" beside "found none"). A proposal always carries both; a result
    without them says so rather than show a number with no threshold to read it by."""
    if result.roi_probability is None or result.roi_threshold is None:
        return "no presence figure recorded"
    shown = shown_call(result.roi_probability, result.roi_threshold)
    return f"{shown.probability} {shown.relation} its threshold {shown.threshold}"
