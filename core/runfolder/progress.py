"""A run's progress read back from its folder: parts, counts, phase, ETA and curves.

The Train and Home pages show a run that another process is training, so
everything here is read from ``run.json`` (what is finished) and
``progress.jsonl`` (what is happening), never from the training process.

A run's *parts*, in the order they train: the warm-start model (``pooled``),
the CV folds' cells (``CV fold k · <cell>``), the grid cells, the ROI finder
(``roi_model``).  Only grid cells count as "cells": a skipped cell is
finished (it has nothing left to train), so a complete run reads
"12 of 12 cells" with "4 skipped", never "8 of 12".
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.grid import plan
from core.runfolder.layout import RunSummary

TRAINING_EVENTS = ("step", "epoch")
FINDER_EVENTS = ("roi_epoch",)
FINISHED = ("done", "skipped")
POOLED_KEY = "pooled"
FINDER_KEY = "roi_model"
EVENT_STATUS: dict[str, str] = {"cell_done": "done", "cell_skipped": "skipped"}


@dataclass(frozen=True)
class Part:
    """One model of a run as the progress view shows it."""

    key: str
    kind: str  # "pooled" | "cv" | "cell" | "finder"
    status: str  # pending | running | done | skipped
    fraction: float
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class CellCount:
    """Grid cells finished (trained or skipped) out of all."""

    trained: int
    skipped: int
    total: int

    @property
    def finished(self) -> int:
        return self.trained + self.skipped


def event_key(event: dict[str, Any]) -> str:
    """The part an event belongs to: a CV fold's cell is not the grid's cell of that name."""
    fold = event.get("fold")
    return f"CV fold {fold} · {event.get('cell')}" if fold is not None else str(event.get("cell"))


def _fraction(event: dict[str, Any]) -> float:
    if event.get("event") in FINDER_EVENTS:
        return min(1.0, int(event.get("epoch") or 0) / max(1, int(event.get("epochs") or 1)))
    epochs, steps = max(1, int(event.get("epochs") or 1)), max(1, int(event.get("steps") or 1))
    done = (int(event.get("epoch") or 1) - 1) * steps + int(event.get("step") or 0)
    return min(1.0, max(0.0, done / (epochs * steps)))


def _kind(key: str) -> str:
    if key == POOLED_KEY:
        return "pooled"
    if key == FINDER_KEY:
        return "finder"
    return "cv" if key.startswith("CV fold ") else "cell"


def _recorded(run: RunSummary) -> dict[str, dict[str, Any]]:
    """What run.json says of each part (cells, warm-start model, ROI finder)."""
    info = run.info
    recorded = {name: dict(entry) for name, entry in (info.get("cells") or {}).items()}
    for key in (POOLED_KEY, FINDER_KEY):
        if isinstance(info.get(key), dict):
            recorded[key] = dict(info[key])
    return recorded


def _planned_keys(run: RunSummary) -> list[str]:
    """Parts the run's options promise, before any of them has started."""
    config = run.info.get("config") or {}
    cells = [c.name for m in run.info.get("modes", ["baseline", "roi"]) for c in plan(m)]
    return ([POOLED_KEY] if config.get("warm_start") else []) + cells \
        + ([FINDER_KEY] if config.get("roi_model") else [])


def parts(run: RunSummary, events: Iterable[dict[str, Any]]) -> list[Part]:
    """Every part of the run in training order, with its state from run.json and events."""
    recorded = _recorded(run)
    last: dict[str, dict[str, Any]] = {}
    said: dict[str, dict[str, Any]] = {}
    for ev in events:
        if not ev.get("cell"):
            continue
        if ev.get("event") in TRAINING_EVENTS + FINDER_EVENTS:
            last[event_key(ev)] = ev
        elif ev.get("event") in EVENT_STATUS:
            said[event_key(ev)] = ev
    planned = _planned_keys(run)
    seen = planned + [k for k in [*recorded, *last, *said] if k not in planned]
    order = {"pooled": 0, "cv": 1, "cell": 2, "finder": 3}
    keys = sorted(dict.fromkeys(seen), key=lambda k: order[_kind(k)])  # stable within a kind
    return [_part(k, recorded.get(k, {}), last.get(k, {}), said.get(k, {})) for k in keys]


def _part(key: str, entry: dict[str, Any], ev: dict[str, Any], said: dict[str, Any]) -> Part:
    status = str(entry.get("status") or EVENT_STATUS.get(str(said.get("event")), "")
                 or ("running" if ev else "pending"))
    fraction = 1.0 if status in FINISHED else _fraction(ev) if ev else 0.0
    return Part(key, _kind(key), status, fraction, ev.get("epoch"), ev.get("epochs"),
                ev.get("loss"), entry.get("reason") or said.get("reason"))


def cell_count(found: Iterable[Part]) -> CellCount:
    cells = [p for p in found if p.kind == "cell"]
    return CellCount(sum(p.status == "done" for p in cells),
                     sum(p.status == "skipped" for p in cells), len(cells))


def phase(run: RunSummary, found: list[Part]) -> str:
    """What a running run is doing: ``preparing``, ``training`` or ``evaluating``.

    ``evaluating`` (every part finished, the run not yet complete) is the test
    split's prediction and scoring, which no step count covers.
    """
    if run.status != "running":
        return run.status
    if found and all(p.finished for p in found):
        return "evaluating"
    if not any(p.status != "pending" or p.fraction > 0 for p in found):
        return "preparing"
    return "training"


def eta_seconds(run: RunSummary, events: list[dict[str, Any]], found: list[Part]) -> float | None:
    """Seconds left of the training steps, from the latest estimate; None when there is none.

    The estimate covers every step still to come (cells, folds, warm start, ROI
    finder) and counts steps an earlier process finished; it is not offered
    while nothing trains (preparing, evaluating) or for a run that is not running.
    """
    if phase(run, found) != "training":
        return None
    for ev in reversed(events):
        if ev.get("eta_s") is not None:
            return float(ev["eta_s"])
    return None


def overall_fraction(events: list[dict[str, Any]]) -> float | None:
    """Share of the run's training steps done, from the latest event that counts them."""
    for ev in reversed(events):
        if ev.get("steps_total"):
            return min(1.0, max(0.0, int(ev.get("steps_done") or 0) / int(ev["steps_total"])))
    return None


@dataclass
class Curve:
    """One part's training and validation curves (x in epochs)."""

    x: list[float]
    loss: list[float]
    val_x: list[float]
    val_loss: list[float | None]
    val_auc: list[float | None]


def curves(events: Iterable[dict[str, Any]]) -> dict[str, Curve]:
    """Loss per logged step, validation loss and ROC AUC per epoch, by part (CV folds
    and the ROI finder left out: their many or differently scaled curves would bury
    the grid's)."""
    out: dict[str, Curve] = {}
    for ev in events:
        key = event_key(ev)
        if ev.get("event") not in TRAINING_EVENTS or ev.get("loss") is None \
                or _kind(key) not in ("cell", "pooled"):
            continue
        c = out.setdefault(key, Curve([], [], [], [], []))
        steps = max(1, int(ev.get("steps") or 1))
        c.x.append(int(ev.get("epoch") or 1) - 1 + int(ev.get("step") or 0) / steps)
        c.loss.append(float(ev["loss"]))
        if ev.get("event") == "epoch":
            c.val_x.append(float(ev.get("epoch") or 1))
            c.val_loss.append(ev.get("val_loss"))
            c.val_auc.append(ev.get("val_auc"))
    return out


START_EVENT = "cell_start"
END_STATUS: dict[str, str] = {**EVENT_STATUS, "roi_model_done": "done"}


@dataclass(frozen=True)
class CellRow:
    """One part as the per-cell table shows it: where it runs, how far, which attempt."""

    cell: str
    status: str  # running | done | skipped | stopped (the run ended while it ran)
    node: str | None  # None: never started (skipped)
    epoch: int | None
    epochs: int | None
    attempt: int | None


def cell_table(events: Iterable[dict[str, Any]], this_node: str | None = None,
               running: bool = True) -> list[CellRow]:
    """Every part that has an event, in the order they first appear, from events alone.

    A part is running from its ``cell_start`` (or first epoch event) until
    ``cell_done`` / ``cell_skipped``; a later ``cell_start`` (a retry, a resume)
    opens it again.  Its node is the latest event's ``"node"``; events without one
    (written before they carried it, or by one process) name ``this_node`` (default:
    this machine's host name, which is what a one-process run names); a part that never
    started (skipped) has neither node nor attempt.  The attempt
    is ``cell_start``'s ``"attempt"``, else how many times it started.  With
    ``running`` False (the run ended), a part still running reads ``stopped``.
    """
    import socket

    local = this_node or socket.gethostname()
    state: dict[str, dict[str, Any]] = {}
    for ev in events:
        kind = ev.get("event")
        if not ev.get("cell") or kind not in (START_EVENT, *TRAINING_EVENTS, *FINDER_EVENTS,
                                               *END_STATUS):
            continue
        row = state.setdefault(event_key(ev), {"status": "running", "node": None, "epoch": None,
                                               "epochs": None, "starts": 0, "attempt": None})
        row["node"] = ev.get("node") or row["node"]
        if kind == START_EVENT:
            row.update(status="running", starts=row["starts"] + 1, attempt=ev.get("attempt"))
        elif kind in END_STATUS:
            row["status"] = str(ev.get("status") or END_STATUS[kind])
        else:
            row.update(status="running", epoch=ev.get("epoch"), epochs=ev.get("epochs"))
    rows = []
    for key, r in state.items():
        trained = r["starts"] or r["epoch"] or r["node"]  # a skipped cell ran nowhere
        rows.append(CellRow(
            key, "stopped" if r["status"] == "running" and not running else r["status"],
            (r["node"] or local) if trained else None, r["epoch"], r["epochs"],
            int(r["attempt"] or max(1, r["starts"])) if trained else None))
    return rows
