"""Exclusive file locks held with ``flock``: one holder at a time, across processes.

Why ``flock`` and not a lock file created with ``O_EXCL``: the kernel drops
the lock when its holder ends, however it ends (SIGKILL included), so nobody
has to judge a lock stale and delete it, and nobody can catch a lock between
its creation and the note written into it.  A file left by a killed holder is
simply locked again by the next process.

The holder deletes the file on release, while still holding it, so a finished
run leaves no lock behind.  A process that was waiting on that deleted file
then notices that the name now points elsewhere (or nowhere) and starts over
on the current file, so two processes never hold two files of one name.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class LockBusy(Exception):
    """Another process holds the lock (raised only when not waiting)."""


def _is_current(fh: TextIO, path: Path) -> bool:
    """Is the open file still the one ``path`` names (not deleted by its last holder)?"""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fh.fileno())
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def _open_locked(path: Path, wait: bool) -> TextIO:
    while True:
        fh = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            raise LockBusy(str(path)) from None
        if _is_current(fh, path):
            return fh
        fh.close()


@contextmanager
def exclusive_lock(path: str | Path, wait: bool = True) -> Iterator[TextIO]:
    """Hold an exclusive ``flock`` on ``path`` for the ``with`` block, then delete the file.

    The file is opened read-write and not truncated, so a holder may leave a
    note in it (who holds it, since when) for those it turns away.  With
    ``wait=False`` a held lock raises :class:`LockBusy` at once.
    """
    path = Path(path)
    fh = _open_locked(path, wait)
    try:
        yield fh
    finally:
        path.unlink(missing_ok=True)
        fh.close()  # closing the last descriptor releases the lock
