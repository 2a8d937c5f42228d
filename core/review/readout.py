"""How a probability, its threshold and the call are worded for a clinician.

Two rules live here so that every page, export and the command line agree:

* **The call never contradicts the numbers beside it** (:func:`shown_call`).
  The call is ``p >= threshold`` on the unrounded values, exactly as
  evaluation scores it.  Both numbers are shown as percentages with the same
  number of decimals: whole percent, unless that shows them equal, then one,
  then two decimals.  Rounding to nearest is monotone, so two different
  shown numbers are always in the order of the call.  If two decimals still
  show them equal, a probability at or above the threshold is shown equal
  (``≥`` holds), and one below it is rounded down and the threshold up, so
  "72.00 %" can never be "benign" beside a threshold "72.00 %".
* **A threshold is stated by what it did on validation**
  (:func:`threshold_sentence`): "called malignant at ≥ 37 % (on validation
  this caught 9 of 10 cancers, 90 % sensitivity, and cleared 85 % of benign
  images)", from the counts each cell's ``meta.json`` records.  A cell whose
  threshold sits at 0 % or 100 %, or whose validation AUC is at or below
  chance, did not learn; the sentence says so rather than let the call pass
  as informative.  The counts are those of the threshold in use: the tuned
  one's, or p >= 0.5's (recorded since runs store them); never another
  threshold's.
* **A probability is read as a frequency only where the run earned it**
  (:func:`calibration_sentence`): "about 30 % means about 3 in 10" only when
  the grid's measured ECE on the run's test split is at most
  :data:`FREQUENCY_ECE` on at least :data:`FREQUENCY_MIN_IMAGES` images;
  otherwise the sentence says how far off the probabilities were.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from core.runfolder.layout import PAPER_COUNTS_KEY
from core.wording import count

DEFAULT_THRESHOLD = 0.5
MAX_DECIMALS = 2
UNINFORMATIVE_EDGE = 0.005
"""A threshold within half a percent of 0 or 1 is shown as 0 % or 100 %: it
calls (almost) every image one way, i.e. the cell found no useful cut."""


@dataclass(frozen=True)
class ShownCall:
    """A probability and its threshold as shown, and the call they support."""

    probability: str
    threshold: str
    malignant: bool

    @property
    def word(self) -> str:
        return "malignant" if self.malignant else "benign"

    @property
    def relation(self) -> str:
        """``≥`` or ``<``: how the shown probability stands to the shown threshold."""
        return "≥" if self.malignant else "<"


def _percent(x: float, decimals: int, rounding: str = ROUND_HALF_EVEN) -> str:
    """``x`` (a probability) as a percentage text, rounded exactly on its binary value."""
    with localcontext() as ctx:
        ctx.prec = 100  # a float's exact value has at most ~770 digits, but < 60 in [0, 1] here
        value = Decimal(float(x)) * 100
        return f"{value.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)} %"


def shown_call(p: float, threshold: float | None = None) -> ShownCall:
    """The call ``p >= threshold`` with both numbers worded so they never contradict it.

    See the module docstring for the rule; ``threshold`` None means 0.5.
    """
    t = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    p = float(p)
    malignant = p >= t
    for decimals in range(MAX_DECIMALS + 1):
        p_text, t_text = _percent(p, decimals), _percent(t, decimals)
        if p_text != t_text:
            return ShownCall(p_text, t_text, malignant)
    if not malignant:
        p_text = _percent(p, MAX_DECIMALS, ROUND_FLOOR)
        t_text = _percent(t, MAX_DECIMALS, ROUND_CEILING)
    return ShownCall(p_text, t_text, malignant)


def _share(num: int, den: int) -> str:
    return f"{100 * num / den:.0f} %"


def uninformative_reason(meta: Mapping[str, Any] | None, threshold: float | None) -> str | None:
    """Why a cell's call carries no information, or None when nothing says so."""
    meta = meta or {}
    if threshold is not None and (threshold < UNINFORMATIVE_EDGE
                                  or threshold >= 1 - UNINFORMATIVE_EDGE):
        return (f"its threshold sits at {_percent(threshold, 0)}, so it calls almost every "
                f"image {'malignant' if threshold < 0.5 else 'benign'}")
    auc = meta.get("val_auc")
    if isinstance(auc, (int, float)) and auc <= 0.5:
        return f"its validation ROC AUC was {auc:.2f}, no better than chance"
    return None


def _is_counts(counts: Any) -> bool:
    return isinstance(counts, Mapping) and all(k in counts for k in ("tp", "fn", "tn", "fp"))


def counts_at(meta: Mapping[str, Any], threshold: float) -> Mapping[str, int] | None:
    """The validation counts recorded at ``threshold``: the tuned threshold's, or p ≥ 0.5's.

    None when the cell recorded none at that threshold (a run trained before
    0.5's counts were stored): quoting the tuned threshold's counts beside a
    0.5 call would state what another rule caught.
    """
    tuned = meta.get("threshold")
    if isinstance(tuned, (int, float)) and float(tuned) == threshold \
            and _is_counts(meta.get("threshold_counts")):
        return meta["threshold_counts"]
    if threshold == DEFAULT_THRESHOLD and _is_counts(meta.get(PAPER_COUNTS_KEY)):
        return meta[PAPER_COUNTS_KEY]
    return None


def threshold_sentence(meta: Mapping[str, Any] | None, threshold: float | None = None,
                       threshold_text: str | None = None) -> str:
    """"called malignant at ≥ 37 % (on validation this caught 9 of 10 cancers, …)".

    ``meta`` is the cell's ``meta.json``; ``threshold`` defaults to its own and
    ``threshold_text`` (e.g. :attr:`ShownCall.threshold`) to whole percent, so
    the sentence can repeat exactly the number shown beside the call.
    """
    meta = meta or {}
    if threshold is None:
        threshold = meta.get("threshold", DEFAULT_THRESHOLD)
    text = f"called malignant at ≥ {threshold_text or _percent(float(threshold), 0)}"
    counts = counts_at(meta, float(threshold))
    if counts is not None:
        where = ("on validation" if meta.get("threshold_source", "val") == "val"
                 else "on its training images, as its validation carve lacked a class,")
        cancers, benign = counts["tp"] + counts["fn"], counts["tn"] + counts["fp"]
        parts = []
        if cancers:
            parts.append(f"caught {counts['tp']} of {count(cancers, 'cancer')}"
                         f", {_share(counts['tp'], cancers)} sensitivity")
        if benign:
            parts.append(f"{'and ' if parts else ''}cleared {_share(counts['tn'], benign)} of "
                         f"{count(benign, 'benign image')}")
        if parts:
            text += f" ({where} this {', '.join(parts)})"
    elif "threshold_counts" in meta and float(threshold) != meta.get("threshold"):
        text += " (what this threshold caught on validation was not recorded for this model)"
    else:
        text += " (no validation figures recorded for this model)"
    reason = uninformative_reason(meta, float(threshold))
    if reason:
        text += f". Uninformative: this model did not learn to separate the classes; {reason}"
    return text


FREQUENCY_ECE = 0.05
"""The largest test-split ECE at which "about 30 % means about 3 in 10" is said.

A frequency sentence rounds to tenths ("3 in 10"): a mean gap of at most 5
points keeps the observed rate within half a tenth of the shown figure on
average, so the rounded statement stays true; above it, "3 in 10" may
really be 1 or 5 in 10."""
FREQUENCY_MIN_IMAGES = 100
"""Fewest test images on which an ECE is trusted to certify a frequency reading: with 10
bins, fewer leave most bins with a handful of images, and the ECE is mostly noise."""
GRID_NAMES: dict[str, str] = {"roi_aware": "ROI-aware", "baseline": "Baseline"}


def calibration_sentence(calibration: Mapping[str, Any] | None) -> str:
    """How far the served probabilities can be read as frequencies, per grid, from the run's
    measured calibration (``metrics.json``'s ``calibration`` block; None when not measured).

    See :data:`FREQUENCY_ECE` for the bar.  A grid that missed it is stated by its
    measured mean gap, so "30 %" is never offered as "3 in 10" beside an ECE of 0.21.
    """
    blocks = {g: (calibration or {}).get(g) for g in GRID_NAMES}
    blocks = {g: b for g, b in blocks.items()
              if isinstance(b, Mapping) and isinstance(b.get("ece"), (int, float))}
    if not blocks:
        return ("This run's calibration was not measured on its test split, so read the "
                "probabilities as a ranking, not as how often such images were cancers.")
    parts = []
    for grid, block in blocks.items():
        ece, n = float(block["ece"]), int(block.get("n") or 0)
        gap = f"{100 * ece:.0f} point{'s' if round(100 * ece) != 1 else ''}"
        if ece <= FREQUENCY_ECE and n >= FREQUENCY_MIN_IMAGES:
            parts.append(f"{GRID_NAMES[grid]}: on this run's test split ({n} images) predicted "
                         f"probabilities were off by {gap} on average (ECE {ece:.2f}), so about "
                         "30 % means about 3 in 10 such images were cancers there.")
        elif ece <= FREQUENCY_ECE:
            parts.append(f"{GRID_NAMES[grid]}: off by {gap} on average (ECE {ece:.2f}) on only "
                         f"{n} test images, too few to read a probability as how often such "
                         "images were cancers.")
        else:
            parts.append(f"{GRID_NAMES[grid]}: on this run's test split predicted probabilities "
                         f"were off by {gap} on average (ECE {ece:.2f}); read them as a ranking, "
                         "not as how often such images were cancers.")
    return " ".join(parts)
