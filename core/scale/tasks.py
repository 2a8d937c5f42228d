"""What a Ray task of a training run does on its worker, and how its progress gets out.

A task trains one model (the warm-start model, a cell, the ROI finder) with
the one-process code (:func:`core.train.loop.train_cell`,
:func:`core.roifinder.train.train_finder`) in a temporary run folder of its
own, and returns that model's files as bytes in an :class:`Outcome`: the
driver writes them into the run folder, so no worker needs the run folder's
file system.  Its inputs (the preprocessed images, its rows) come as task
arguments through Ray's object store.  Its progress events go to the
driver's :class:`EventSink` as they happen, carrying ``node`` (Ray's address
of the worker's node, ``ray.util.get_node_ip_address()``), ``attempt`` (1,
then 2, ... when Ray retries a task whose worker died) and ``pid``.
"""
from __future__ import annotations

import os
import signal
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from core.runfolder import layout as runs

CRASH_ENV = "MAMMOROUTE_RAY_CRASH"
"""Fault injection for the retry test and benchmark: a task training this folder
(``all-LCC``) SIGKILLs its own worker at the end of its first epoch, on its first
attempt only, as a worker lost to the OOM killer or a dead node would end."""


@dataclass(frozen=True)
class Part:
    """One model a run trains: ``folder`` is its folder relative to the run folder
    (``RCC-roi``, ``pooled``, ``cv/fold-2/LCC``, ``roi_model``), unique in the run."""

    folder: str
    fold: int | None = None  # 1-based CV fold, None for the run's own models


@dataclass
class Outcome:
    """What a task hands back: its result, its model folder's files, where it ran."""

    part: Part
    result: Any  # a CellResult, or the ROI finder's run.json entry
    files: dict[str, bytes]
    node: str
    attempt: int


class EventSink:
    """A Ray actor (no CPU of its own) the tasks send events to and the driver drains.

    It also numbers each part's attempts: a retried task asks again and gets 2.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.attempts: dict[str, int] = {}

    def begin(self, folder: str) -> int:
        self.attempts[folder] = self.attempts.get(folder, 0) + 1
        return self.attempts[folder]

    def put(self, folder: str, event: dict[str, Any]) -> None:
        self.events.append((folder, event))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.events = self.events, []
        return out


def _where(sink: Any, part: Part) -> tuple[Any, str, int]:
    """``(ray, node, attempt)`` of this task; torch gets the task's CPU share as threads."""
    import ray
    import torch

    from core.train.device import THREADS_ENV

    threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    os.environ[THREADS_ENV] = str(threads)  # train_cell's own set-up reads it again
    torch.set_num_threads(threads)
    return ray, ray.util.get_node_ip_address(), ray.get(sink.begin.remote(part.folder))


def _progress(ray: Any, sink: Any, part: Part, node: str, attempt: int, total: int):
    """A :class:`Progress` whose events go to ``sink`` (nothing printed on the worker)."""
    from core.train.progress import Progress

    def send(event: dict[str, Any]) -> None:
        sink.put.remote(part.folder, event)
        if os.environ.get(CRASH_ENV) == part.folder and attempt == 1 and event["event"] == "epoch":
            ray.get(sink.put.remote(part.folder, {**event, "event": "worker_killed"}))
            os.kill(os.getpid(), signal.SIGKILL)

    progress = Progress(None, total, send,
                        stream=open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the task)
    progress.node, progress.attempt = node, attempt
    progress.context = {"node": node, "attempt": attempt, "pid": os.getpid(),
                        **({"fold": part.fold} if part.fold else {})}
    return progress


def _files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


def _unpack(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def train_model_task(part: Part, cell: Any, fit: pd.DataFrame, val: pd.DataFrame, config: Any,
                     pooled: Outcome | None, prior: dict[str, bytes], bank: Any,
                     sink: Any) -> Outcome:
    """Train one cell or the warm-start model; ``pooled`` is the warm-start model's outcome
    the cell starts from (when it trained), ``prior`` the files its folder already held
    (an interrupted cell's ``last.*`` continue from their epoch, as in one process)."""
    from core.train.data import steps_per_epoch
    from core.train.loop import train_cell
    from core.train.warmstart import POOLED

    ray, node, attempt = _where(sink, part)
    total = config.epochs * steps_per_epoch(len(fit), config.batch_size)
    progress = _progress(ray, sink, part, node, attempt, total)
    with tempfile.TemporaryDirectory(prefix="mammoroute-task-") as tmp:
        run = Path(tmp)
        if pooled is not None and pooled.result.status == "done":
            _unpack(run / POOLED.name, pooled.files)
            config = replace(config, init_weights=str(run / POOLED.name / runs.WEIGHTS_FILE),
                             init_sha256=pooled.result.sha256)
        _unpack(run / cell.name, prior)
        result = train_cell(cell, fit, val, config, run, progress, bank)
        files = _files(run / cell.name)
    ray.get(sink.put.remote(part.folder, {}))  # the sink holds every event before we return
    return Outcome(part, result, files, node, attempt)


def train_finder_task(part: Part, train_df: pd.DataFrame, config: Any, device: str,
                      inputs: Any, per_epoch: int, sink: Any) -> Outcome:
    """Train the ROI finder from ``inputs`` (:func:`core.roifinder.train.finder_inputs`, read
    by the driver); its epochs count ``per_epoch`` steps each towards the run's ETA."""
    from core.models import pick_device
    from core.roifinder.store import ROI_DIR
    from core.roifinder.train import train_finder

    ray, node, attempt = _where(sink, part)
    progress = _progress(ray, sink, part, node, attempt, per_epoch * config.epochs)
    progress.start(ROI_DIR, ROI_DIR)

    def emit(event: str, **fields: Any) -> None:
        if event == "roi_epoch":
            progress.advance(per_epoch, 0)
        progress.emit(event, **fields)

    with tempfile.TemporaryDirectory(prefix="mammoroute-task-") as tmp:
        entry = train_finder(train_df, tmp, config, pick_device(device), False, None, emit, inputs)
        folder = Path(tmp) / ROI_DIR
        files = _files(folder) if folder.is_dir() else {}
    ray.get(sink.put.remote(part.folder, {}))
    return Outcome(part, entry, files, node, attempt)
