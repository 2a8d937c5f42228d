"""Fill the preprocess cache for many files with a process pool (training's first epoch)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from core.errors import MammoError
from core.pixels.cache import DEFAULT_CACHE, DefaultCache, PreprocessCache, load_preprocessed, resolve_cache
from core.pixels.spec import PreprocessParams

_log = logging.getLogger(__name__)


@dataclass
class PreprocessReport:
    """What :func:`preprocess_many` did: counts, time and every file's error."""

    total: int
    decoded: int
    cached: int
    seconds: float
    errors: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False  # ``stop()`` said yes before every file was done

    @property
    def images_per_s(self) -> float:
        """Files decoded per second (cache hits excluded: they cost nothing)."""
        return self.decoded / self.seconds if self.seconds > 0 else 0.0


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; threads inside would oversubscribe


def _fill_one(job: tuple[str, PreprocessParams, str]) -> tuple[str, str | None]:
    """Decode one file into the cache; returns ``(path, error or None)``."""
    path, params, root = job
    try:
        load_preprocessed(path, params, PreprocessCache(root))
    except MammoError as err:
        return path, str(err)
    except Exception as err:  # a reader bug must not sink the whole batch; reported as such
        return path, f"{path}: unexpected {type(err).__name__}: {err}"
    return path, None


def preprocess_many(paths: Iterable[str | Path], params: PreprocessParams,
                    workers: int | None = None,
                    cache: PreprocessCache | DefaultCache = DEFAULT_CACHE,
                    progress: Callable[[int, int], None] | None = None,
                    stop: Callable[[], bool] | None = None) -> PreprocessReport:
    """Fill the cache for ``paths`` with a process pool (all cores by default).

    Hits are found in this process first; only misses go to workers.  Errors
    are collected per file (every bad file is reported, not the first one).
    ``progress(done, total)`` is called as files finish.  Workers are started
    with "spawn": forking a process that holds threads (the Streamlit server,
    a torch runtime) can deadlock.  ``stop()`` is asked as files finish: once
    it says yes no further file is started and the report says ``stopped``
    (a cancelled training must end within its grace period).
    """
    start = time.perf_counter()
    store = resolve_cache(cache)
    if store is None:
        raise ValueError("preprocess_many fills a cache; pass one (or leave the default)")
    paths = [str(p) for p in paths]
    misses, errors = _split_hits(paths, params, store)
    cached = len(paths) - len(misses) - len(errors)
    done = cached + len(errors)
    if progress:
        progress(done, len(paths))
    jobs = [(p, params, str(store.root)) for p in misses]
    n_workers = max(1, min(workers or len(os.sched_getaffinity(0)) or 1, len(jobs)))
    stop = stop or (lambda: False)
    for path, error in _run_jobs(jobs, n_workers, stop):
        if error is not None:
            errors.append((path, error))
        done += 1
        if progress:
            progress(done, len(paths))
    return PreprocessReport(total=len(paths), decoded=done - cached - len(errors), cached=cached,
                            seconds=time.perf_counter() - start, errors=errors,
                            stopped=done < len(paths))


def _split_hits(paths: list[str], params: PreprocessParams,
                store: PreprocessCache) -> tuple[list[str], list[tuple[str, str]]]:
    """Paths still to decode, and files that are already missing or unreadable."""
    misses: list[str] = []
    errors: list[tuple[str, str]] = []
    for p in paths:
        try:
            if not store.entry(store.key(p, params)).is_file():
                misses.append(p)
        except MammoError as err:
            errors.append((p, str(err)))
    return misses, errors


def _run_jobs(jobs: list[tuple[str, PreprocessParams, str]], n_workers: int,
              stop: Callable[[], bool]) -> Iterator[tuple[str, str | None]]:
    """Yield ``(path, error)`` per job until ``stop()``: in this process for one worker,
    else a pool.

    If the pool cannot run at all (workers killed, a ``__main__`` that spawn
    cannot re-import), the remaining jobs are done here rather than lost,
    unless ``stop()`` says yes: the signal that cancels a training reaches
    its pool workers too, and decoding the rest here would outlast the grace
    period.  One file per task, so a stop waits for at most the files the
    workers hold (about two each), however long the list.
    """
    if n_workers <= 1 or len(jobs) <= 1:
        yield from _until_stopped(jobs, stop)
        return
    finished = 0
    try:
        with ProcessPoolExecutor(max_workers=n_workers, initializer=_worker_init,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_fill_one, jobs):
                finished += 1
                yield result
                if stop():
                    pool.shutdown(wait=False, cancel_futures=True)
                    return
    except BrokenProcessPool as err:
        if stop():
            return
        _log.warning("preprocess pool broke (%s); finishing %d files in this process",
                     err, len(jobs) - finished)
        yield from _until_stopped(jobs[finished:], stop)


def _until_stopped(jobs: list[tuple[str, PreprocessParams, str]],
                   stop: Callable[[], bool]) -> Iterator[tuple[str, str | None]]:
    for job in jobs:
        if stop():
            return
        yield _fill_one(job)
