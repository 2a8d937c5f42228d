"""Cancellation: the shared cancel flag, SIGTERM / SIGINT handling, :class:`TrainingCancelled`."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import TrainingError

CANCEL = threading.Event()


class TrainingCancelled(TrainingError):
    """SIGTERM / SIGINT arrived: the run stopped after a step and can be resumed."""


@contextmanager
def cancel_on_signals() -> Iterator[None]:
    """SIGTERM / SIGINT set a flag checked after every step; a second one stops at once."""
    CANCEL.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if CANCEL.is_set():
            raise KeyboardInterrupt
        CANCEL.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        CANCEL.clear()
