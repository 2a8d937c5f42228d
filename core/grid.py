"""Cells and the routing rule: which model serves which image.

The ROI-aware grid has one cell per (ROI present?, view); the baseline grid
ignores ROI presence and has one cell per view.  Only the *presence* of an ROI
routes; ROI pixels are never a model input.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

VIEWS: tuple[str, ...] = ("RCC", "LCC", "RMLO", "LMLO")
MODES: tuple[str, ...] = ("baseline", "roi")
Mode = Literal["baseline", "roi"]

_ROI_PREFIX = {True: "roi", False: "noroi", None: "all"}
_PREFIX_ROI = {v: k for k, v in _ROI_PREFIX.items()}


@dataclass(frozen=True, order=False)
class Cell:
    """One model's territory. ``roi`` is None for baseline cells."""

    roi: bool | None
    view: str

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; expected one of {VIEWS}")

    @property
    def name(self) -> str:
        """Stable text used in file names, logs and the UI, e.g. ``roi-LMLO``."""
        return f"{_ROI_PREFIX[self.roi]}-{self.view}"

    @property
    def mode(self) -> Mode:
        return "baseline" if self.roi is None else "roi"

    @classmethod
    def parse(cls, name: str) -> Cell:
        prefix, _, view = name.partition("-")
        if prefix not in _PREFIX_ROI:
            raise ValueError(f"not a cell name: {name!r}")
        return cls(_PREFIX_ROI[prefix], view)

    def __str__(self) -> str:
        return self.name


def view_name(laterality: str, view: str) -> str:
    """``("L", "CC")`` → ``"LCC"``; the four standard views only."""
    name = f"{str(laterality).strip().upper()}{str(view).strip().upper()}"
    if name not in VIEWS:
        raise ValueError(f"unknown view {laterality!r}/{view!r}")
    return name


def route_image(view: str, has_roi: bool, mode: Mode) -> Cell:
    """The cell that serves an image of ``view`` under ``mode``."""
    if mode == "baseline":
        return Cell(None, view)
    if mode == "roi":
        return Cell(bool(has_roi), view)
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


FALLBACK_ORDER: tuple[str, ...] = ("baseline", "other_roi")
"""Who serves an ROI-aware image whose own cell has no model, in order.

``baseline``: the baseline model of the same view (it saw every image of that
view, with and without ROI, so it is the closest stand-in); ``other_roi``:
the other ROI-aware cell of the same view.  If neither exists the image gets
no ROI-aware prediction.  A baseline cell without a model has no stand-in:
substituting an ROI-aware model would blur the very comparison the app makes.
The test split, cross-validation's held-out folds and case review all serve
through this rule, so a skipped cell's images count the same way in each.
"""


@dataclass(frozen=True)
class CellGap:
    """Why a cell of a run has no model: its ``run.json`` status and reason.

    Kept apart from the text so a reader can be told the real cause (skipped
    for too few images, failed, never reached) rather than a guess.
    """

    status: str
    reason: str | None = None

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}" if self.reason else self.status


@dataclass(frozen=True)
class Route:
    """Which model serves an image: ``cell`` is None when none can."""

    wanted: str
    cell: str | None
    fallback: bool = False
    reason: str | None = None


def serve(view: str, has_roi: bool, mode: Mode, trained: Collection[str],
          why_not: Mapping[str, CellGap | str] | None = None) -> Route:
    """The trained model that serves an image of ``view`` under ``mode``
    (:data:`FALLBACK_ORDER`); ``why_not`` gives an untrained cell's reason."""
    wanted = route_image(view, has_roi, mode).name
    if wanted in trained:
        return Route(wanted, wanted)
    why = f"{wanted} has no model ({(why_not or {}).get(wanted, 'not trained')})"
    if mode == "baseline":
        return Route(wanted, None, reason=why)
    stand_ins = {"baseline": Cell(None, view).name, "other_roi": Cell(not has_roi, view).name}
    for key in FALLBACK_ORDER:
        if stand_ins[key] in trained:
            return Route(wanted, stand_ins[key], True, f"{why}; served by {stand_ins[key]}")
    return Route(wanted, None, reason=f"{why} and no stand-in for {view} was trained")


ROUTE_PREFIX: dict[str, str] = {"roi": "ROI-aware: ", "baseline": "baseline: "}
"""How a view's warning about its routing starts, per grid."""


def route_warning(mode: Mode, reason: str) -> str:
    """A routing reason as a view warning: the grid's prefix tells the reader which grid it is."""
    return ROUTE_PREFIX[mode] + reason


def is_route_warning(text: str) -> bool:
    """Whether a view warning came from routing (so a page that shows routing apart can skip it)."""
    return text.startswith(tuple(ROUTE_PREFIX.values()))


def plan(mode: Mode) -> list[Cell]:
    """All cells of a grid, in a fixed order (views, then without/with ROI)."""
    if mode == "baseline":
        return [Cell(None, v) for v in VIEWS]
    if mode == "roi":
        return [Cell(roi, v) for roi in (False, True) for v in VIEWS]
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def modes_for(choice: str) -> list[Mode]:
    """``"both"`` → both grids; otherwise the one named."""
    if choice == "both":
        return ["baseline", "roi"]
    if choice in MODES:
        return [choice]  # type: ignore[list-item]
    raise ValueError(f"unknown mode {choice!r}; expected baseline, roi or both")
