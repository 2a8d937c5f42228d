"""The driver of a training run on Ray: every model a Ray task, the run folder written here.

:func:`ray_executor` plugs into :func:`core.train.grid.train_grid` in place of
the one-process :func:`~core.train.grid.train_serially`.  The run is planned
exactly as in one process (the same carve, cells, seeds, the same skip and
resume rules), so each model is the same pure function of its inputs, then:

1. the preprocessed images go into the object store once (``ray.put``);
2. each recipe (the run's own, and each CV fold's) submits its warm-start
   model, then its cells, each cell depending on that model's task (Ray starts
   it once the weights exist), and the ROI finder is submitted last (its inputs
   are read here while the cells already train);
3. while tasks run, their progress events are drained from the
   :class:`~core.scale.tasks.EventSink` into ``progress.jsonl``, with the run's
   own step count and ETA;
4. each finished task's files are written here, atomically, their SHA-256
   checked against what the task reported, and run.json updated, as the
   one-process path does; once a recipe's cells are all in, its grids are
   calibrated here; CV folds are scored here into ``cv.json``.

A worker that dies is retried by Ray (:data:`TASK_RETRIES`); an error raised
by the training code is not retried (it would fail again) and fails the run.
Cancel (SIGTERM / Ctrl-C) closes the run as ``cancelled`` first, then
force-cancels every task still pending; finished models stay in the run folder,
so ``--resume`` continues with the rest.  A cell
interrupted on a worker starts again from its first epoch (its per-epoch
checkpoints live on the worker), as a pure function of its seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import MammoError, ScaleError, TrainingError
from core.grid import Cell
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_bytes, atomic_write_json
from core.runfolder.integrity import file_sha256
from core.scale.session import ray_session
from core.scale.tasks import EventSink, Outcome, Part, train_finder_task, train_model_task
from core.train.cancel import CANCEL, TrainingCancelled
from core.train.carve import run_carve
from core.train.checkpoint import done_result
from core.train.config import CellResult, class_counts
from core.train.cv import fold_dir, score_folds
from core.train.data import steps_per_epoch
from core.train.grid import Executor, RunWork, close_run, finder_steps, record_finder
from core.train.planned import PlannedCell, plan_cells
from core.train.recipe import finish_recipe
from core.train.runinfo import write_run
from core.train.warmstart import POOLED

TASK_RETRIES = 3
WAIT_S = 0.5
DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RayOptions:
    """Where a run executes (``--ray-address``, ``--gpus-per-cell``, ``--cpus-per-cell``),
    not what it trains, so none of it is in :class:`~core.train.config.TrainConfig`."""

    address: str | None = None
    gpus_per_cell: float | None = None
    cpus_per_cell: int | None = None


def ray_executor(options: RayOptions) -> Executor:
    """An :data:`~core.train.grid.Executor` that trains a run's models as Ray tasks."""
    def execute(work: RunWork) -> None:
        with ray_session(options.address) as ray:
            resources = task_resources(ray, options, options.address)
            work.info["executor"] = {"kind": "ray", "address": options.address, **resources}
            driver = _Driver(ray, work, resources)
            try:
                driver.run()
            except TrainingCancelled as err:
                # first, before any call into Ray: a signal to the process group stops a
                # local Ray too, and Ray may then end this process within seconds
                close_run(work.out_dir, work.info, "cancelled", work.reporter, str(err),
                          "cancelled")
                raise
            finally:
                driver.cancel_pending()
    return execute


def task_resources(ray: Any, options: RayOptions, address: str | None) -> dict[str, float]:
    """``num_cpus`` / ``num_gpus`` of every training task on this cluster.

    GPUs only where the cluster has them (default 1 per task there, 0 elsewhere);
    CPUs by default all of the smallest CPU-only node's (one cell per node at a
    time, each with every core, as one process would), or a GPU node's CPUs per
    GPU times the task's GPUs.  A request no node can meet is refused here,
    rather than waiting for ever.
    """
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    gpu_nodes = [n for n in nodes if n.get("GPU", 0) > 0]
    gpus = options.gpus_per_cell if options.gpus_per_cell is not None else (
        1.0 if gpu_nodes else 0.0)
    if gpus > 0 and not any(n.get("GPU", 0) >= gpus for n in gpu_nodes):
        most = max((n.get("GPU", 0) for n in nodes), default=0)
        raise ScaleError(f"--gpus-per-cell {gpus:g}: no node of this Ray cluster has that many "
                         f"GPUs (most on one node: {most:g})", address or "local Ray")
    if options.cpus_per_cell is not None:
        cpus = options.cpus_per_cell
    elif gpus > 0:
        cpus = min(int(n.get("CPU", 1) / n["GPU"] * gpus) for n in gpu_nodes)
    else:
        cpus = int(min((n.get("CPU", 1) for n in nodes), default=1))
    cpus = max(1, cpus)
    if not any(n.get("CPU", 0) >= cpus for n in nodes):
        most = max((n.get("CPU", 0) for n in nodes), default=0)
        raise ScaleError(f"--cpus-per-cell {cpus}: no node of this Ray cluster has that many "
                         f"CPUs (most on one node: {most:g})", address or "local Ray")
    return {"num_cpus": cpus, "num_gpus": gpus}


@dataclass
class _Recipe:
    """The run's own recipe (``info`` set) or one CV fold's (``fold`` set)."""

    folder: Path
    prefix: str  # "" or "cv/fold-k/": the models' folders relative to the run folder
    fit: Any
    fold: int | None
    info: dict[str, Any] | None
    planned: list[PlannedCell]
    results: dict[str, CellResult] = field(default_factory=dict)


class _Driver:
    """One run's tasks: submitted in the order their inputs allow, gathered as they finish."""

    def __init__(self, ray: Any, work: RunWork, resources: dict[str, float]):
        self.ray, self.work, self.config = ray, work, work.config
        self.reporter = work.reporter
        self.sink = ray.remote(num_cpus=0)(EventSink).remote()
        options = {**resources, "max_retries": TASK_RETRIES, "retry_exceptions": False}
        self.model_task = ray.remote(train_model_task).options(**options)
        self.finder_task = ray.remote(train_finder_task).options(**options)
        self.pending: dict[Any, tuple[_Recipe | None, Part]] = {}
        self.counted: dict[str, int] = {}
        self.recipes: list[_Recipe] = []

    # ---------------------------------------------------------------- run

    def run(self) -> None:
        work = self.work
        bank = self.ray.put(work.bank)
        for k, fit, _ in work.folds:
            self.recipes.append(_Recipe(fold_dir(work.out_dir, k), f"cv/fold-{k + 1}/", fit,
                                        k + 1, None, plan_cells(fit, self.config)))
        self.recipes.append(_Recipe(work.out_dir, "", work.train_df, None, work.info,
                                    plan_cells(work.train_df, self.config)))
        for recipe in self.recipes:
            self._submit_recipe(recipe, bank)
        if self.config.roi_model:
            self._submit_finder()
        try:
            self._gather()
        except Exception:
            if CANCEL.is_set():  # a Ray call cut short by the cancel's own signal
                raise TrainingCancelled("training cancelled by a signal") from None
            raise
        for recipe in self.recipes:  # every cell is in: calibrate each recipe's grids
            finish_recipe(recipe.folder, recipe.results, recipe.info)
        if work.folds:
            trained = {r.fold - 1: r.results for r in self.recipes if r.fold is not None}
            atomic_write_json(work.out_dir / runs.CV_FILE,
                              score_folds(work.folds, trained, work.out_dir, self.config,
                                          work.bank, work.device))

    def _submit_recipe(self, recipe: _Recipe, bank: Any) -> None:
        config, pooled = self.config, None
        if config.warm_start:
            pooled = self._submit_pooled(recipe, bank)
        for p in recipe.planned:
            name, cell_dir = p.cell.name, recipe.folder / p.cell.name
            if p.reason is not None:
                result = CellResult(name, "skipped", reason=p.reason,
                                    counts={"train": class_counts(p.fit), "val": class_counts(p.val)})
                self._emit(recipe, "cell_skipped", cell=name, mode=p.cell.mode, reason=p.reason)
                self._record(recipe, name, result)
                continue
            kept = done_result(p.cell, cell_dir) if config.resume else None
            if kept is not None:  # as train_cell keeps it in one process
                self.reporter.skip(config.epochs * steps_per_epoch(len(p.fit), config.batch_size))
                self._cell_done(recipe, p.cell, kept)
                continue
            part = Part(recipe.prefix + name, recipe.fold)
            ref = self.model_task.remote(part, p.cell, p.fit, p.val, config, pooled,
                                         self._prior(cell_dir), bank, self.sink)
            self._add(ref, recipe, part)

    def _submit_pooled(self, recipe: _Recipe, bank: Any) -> Any:
        """The warm-start model's task (or, resumed, its kept files): what the cells wait on."""
        config = self.config
        fit, val = run_carve(recipe.fit, config)
        folder = recipe.folder / POOLED.name
        kept = done_result(POOLED, folder) if config.resume else None
        if kept is not None:
            self.reporter.skip(config.warm_start * steps_per_epoch(len(fit), config.batch_size))
            self._pooled_done(recipe, kept)
            part = Part(recipe.prefix + POOLED.name, recipe.fold)
            return self.ray.put(Outcome(part, kept, _read_files(folder), "", 0))
        part = Part(recipe.prefix + POOLED.name, recipe.fold)
        pooled_config = replace(config, epochs=config.warm_start, init_weights=None,
                                init_sha256=None)
        ref = self.model_task.remote(part, POOLED, fit, val, pooled_config, None,
                                     self._prior(folder), bank, self.sink)
        self._add(ref, recipe, part)
        return ref

    def _submit_finder(self) -> None:
        from core.roifinder.train import (
            RUN_KEY,
            finder_config,
            finder_inputs,
            kept_entry,
            skipped_entry,
        )

        work, config = self.work, self.config
        finder = finder_config(config)
        previous = work.info.get(RUN_KEY) or {}
        entry = (kept_entry(work.out_dir, finder, previous.get("sha256")) if config.resume
                 else None) or skipped_entry(work.train_df, finder)
        if entry is not None:
            self.reporter.skip(finder_steps(work.train_df, config))
            work.info[RUN_KEY] = entry
            record_finder(work.out_dir, work.info, self.reporter)
            return
        work.info[RUN_KEY] = {**previous, "status": "pending"}
        inputs = finder_inputs(work.train_df, finder)
        per_epoch = finder_steps(work.train_df, config) // finder.epochs
        part = Part(RUN_KEY)
        ref = self.finder_task.remote(part, work.train_df, finder, config.device, inputs,
                                      per_epoch, self.sink)
        self._add(ref, None, part)

    def _add(self, ref: Any, recipe: _Recipe | None, part: Part) -> None:
        self.pending[ref] = (recipe, part)

    def _prior(self, folder: Path) -> dict[str, bytes]:
        """On resume, what an interrupted model left in its folder (its ``last.*``)."""
        return _read_files(folder) if self.config.resume and folder.is_dir() else {}

    # ---------------------------------------------------------------- gather

    def cancel_pending(self) -> None:
        """Force-cancel every task not gathered yet (cancel, a failure: nothing keeps running)."""
        for ref in self.pending:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001  (a local Ray already stopped by the signal)
                return

    def _gather(self) -> None:
        ray = self.ray
        while self.pending:
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=WAIT_S)
            if CANCEL.is_set():
                raise TrainingCancelled("training cancelled by a signal")
            self._relay()
            for ref in ready:
                recipe, part = self.pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = err.cause if isinstance(err.cause, BaseException) else err
                    if isinstance(cause, MammoError):
                        raise cause from None
                    raise TrainingError(f"{type(cause).__name__}: {str(cause).splitlines()[0]}",
                                        self.work.out_dir / part.folder) from None
                except ray.exceptions.RayError as err:  # its worker died, once too often
                    raise TrainingError(f"its worker died {TASK_RETRIES + 1} times "
                                        f"({type(err).__name__})",
                                        self.work.out_dir / part.folder) from None
                self._relay()
                self._land(recipe, outcome)

    def _relay(self) -> None:
        """The tasks' events into progress.jsonl, counted into the run's steps and ETA."""
        for folder, event in self.ray.get(self.sink.drain.remote(), timeout=DRAIN_TIMEOUT_S):
            if not event:
                continue
            event = dict(event)
            name = event.pop("event")
            steps = int(event.pop("steps_done", 0) or 0)
            event.pop("steps_total", None), event.pop("eta_s", None)
            new = max(0, steps - self.counted.get(folder, 0))  # a retry counts past its try's
            self.counted[folder] = max(self.counted.get(folder, 0), steps)
            if new:
                self.reporter.advance(new, 0)
            if name == "cell_start":
                self._running(folder)
            self.reporter.emit(name, **event)

    def _running(self, folder: str) -> None:
        """run.json says which of the run's own models are training now."""
        info = self.work.info
        if folder in info["cells"]:
            info["cells"][folder] = {**info["cells"][folder], "status": "running"}
        elif folder in (POOLED.name, "roi_model"):
            info[folder] = {**(info.get(folder) or {}), "status": "running"}
        else:
            return
        write_run(self.work.out_dir, info)

    # ---------------------------------------------------------------- land

    def _land(self, recipe: _Recipe | None, outcome: Outcome) -> None:
        """Write a finished task's files into the run folder, then record it."""
        folder = self.work.out_dir / outcome.part.folder
        result = outcome.result
        if recipe is None:  # the ROI finder
            from core.roifinder.train import RUN_KEY

            if result.get("status") == "done":
                _write_model(folder, outcome.files, result["sha256"])
            self.work.info[RUN_KEY] = result
            record_finder(self.work.out_dir, self.work.info, self.reporter)
            return
        if result.status == "done":
            _write_model(folder, outcome.files, result.sha256)
        name = Path(outcome.part.folder).name
        if name == POOLED.name:
            self._pooled_done(recipe, result)
        else:
            self._cell_done(recipe, Cell.parse(name), result)

    def _pooled_done(self, recipe: _Recipe, result: CellResult) -> None:
        if recipe.info is not None:
            recipe.info[POOLED.name] = result.to_json()
            write_run(recipe.folder, recipe.info)
        self._emit(recipe, "cell_done", cell=POOLED.name, mode=POOLED.mode,
                   best_epoch=result.best_epoch)

    def _cell_done(self, recipe: _Recipe, cell: Cell, result: CellResult) -> None:
        if result.status == "done":
            self._emit(recipe, "cell_done", cell=cell.name, mode=cell.mode,
                       threshold=result.threshold, best_epoch=result.best_epoch)
        self._record(recipe, cell.name, result)

    def _record(self, recipe: _Recipe, name: str, result: CellResult) -> None:
        recipe.results[name] = result
        if recipe.info is not None:
            recipe.info["cells"][name] = result.to_json()
            write_run(recipe.folder, recipe.info)

    def _emit(self, recipe: _Recipe, event: str, **fields: Any) -> None:
        fold = {"fold": recipe.fold} if recipe.fold else {}
        self.reporter.emit(event, **fold, **fields)


def _read_files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()} \
        if folder.is_dir() else {}


def _write_model(folder: Path, files: dict[str, bytes], sha256: str | None) -> None:
    """A task's model folder, written atomically file by file, meta.json last (a folder
    with a meta.json is a finished one); ``last.*`` of an earlier try are removed."""
    for stale in (runs.LAST_WEIGHTS_FILE, runs.LAST_STATE_FILE):
        (folder / stale).unlink(missing_ok=True)
    for name in sorted(files, key=lambda n: n == runs.META_FILE):
        atomic_write_bytes(folder / name, files[name])
    if sha256 and file_sha256(folder / runs.WEIGHTS_FILE) != sha256:
        raise TrainingError("the weights written differ from those the task trained "
                            "(SHA-256 mismatch)", folder / runs.WEIGHTS_FILE)
