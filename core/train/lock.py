"""The run lock: one training process per run folder (:func:`core.runfolder.lock.exclusive_lock`)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import TrainingError
from core.runfolder.lock import LockBusy, exclusive_lock
from core.train.config import now_iso

LOCK_FILE = ".lock"


def _holder(path: Path) -> dict[str, Any]:
    """The holder's note; empty while it is being written or when unreadable."""
    try:
        note = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


@contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold the run folder for one training process; a second one is refused at once.

    A process killed while holding it leaves the file behind, but not the
    lock: the kernel released that, and the next start takes the folder.
    """
    path = Path(out_dir) / LOCK_FILE
    try:
        with exclusive_lock(path, wait=False) as fh:
            fh.truncate(0)
            json.dump({"pid": os.getpid(), "since": now_iso()}, fh)
            fh.flush()
            yield
    except LockBusy:
        holder = _holder(path)
        who = f" (pid {holder.get('pid')}, since {holder.get('since')})" if holder else ""
        raise TrainingError(f"this run is locked: another training process{who} is using "
                            "this run folder; wait for it or cancel it", out_dir) from None
