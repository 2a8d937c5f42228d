"""The run lock: one writer per run folder, stale locks of dead processes taken over."""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from core.errors import TrainingError
from core.train.config import _now

LOCK_FILE = ".lock"


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live lock holder from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _holder_alive(holder: dict[str, Any]) -> bool:
    """Is the lock's holder still running?  One on another host is assumed to be."""
    if holder.get("host") not in (None, socket.gethostname()):
        return True
    pid = int(holder.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _proc_start(pid)
    return start is None or holder.get("start") in (None, start)


@contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    """One training process per run folder; a dead holder's lock is taken over."""
    path = Path(out_dir) / LOCK_FILE
    me = {"pid": os.getpid(), "start": _proc_start(os.getpid()), "host": socket.gethostname(),
          "since": _now()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            if holder and _holder_alive(holder):
                raise TrainingError(
                    f"another training process (pid {holder.get('pid')}, since "
                    f"{holder.get('since')}) is using this run folder; wait for it or cancel it",
                    out_dir) from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise TrainingError("cannot take the run folder's lock", out_dir)
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == me["pid"]:
                path.unlink()
        except (OSError, json.JSONDecodeError):
            pass
