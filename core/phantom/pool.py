"""Rendering views in a process pool.

Views dominate the cost of a phantom and are independent, each seeded by its
own task, so the pool changes the speed and never the bytes.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def run_tasks(func: Callable[[dict[str, Any]], dict[str, Any]], tasks: list[dict[str, Any]],
              workers: int | None) -> list[dict[str, Any]]:
    """Run tasks in order, in a process pool when it pays; results are the same
    either way because every task carries its own seed.  The default counts the
    cores this process may run on, not the machine's: a container or ``taskset``
    limit would otherwise get more workers than cores."""
    if workers is None:
        workers = min(len(os.sched_getaffinity(0)), 8) if len(tasks) >= 48 else 1
    if workers <= 1:
        return [func(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, tasks, chunksize=max(1, len(tasks) // (workers * 8))))
