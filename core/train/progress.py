""":class:`Progress`: progress.jsonl events, the run's ETA and the terminal line."""
from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.runfolder import layout as runs
from core.train.config import now_iso

ProgressCallback = Callable[[dict[str, Any]], None]


class Progress:
    """progress.jsonl events, an ETA for the whole run and a terminal line.

    ``callback`` (the UI, a test) receives every event; an exception it raises
    stops training like a crash would (that is how tests interrupt a run).
    Every event carries ``steps_done`` / ``steps_total`` of the whole run (steps
    kept from an earlier process included) and the fields of ``context`` (the
    CV fold being trained), so a reader can tell the run's parts apart.
    ``node`` and ``attempt`` say where and on which try a part trains: this
    machine's hostname and 1 in one process; a Ray task sets its own
    (:mod:`core.scale.tasks`), and puts ``node`` in ``context`` too.
    """

    def __init__(self, run_dir: Path | None, total_steps: int,
                 callback: ProgressCallback | None = None, stream: Any = None):
        self.file = run_dir / runs.PROGRESS_FILE if run_dir is not None else None
        self.total = max(1, int(total_steps))
        self.done = 0
        self.callback = callback
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.session_done = 0
        self.window = (time.perf_counter(), 0)
        self.context: dict[str, Any] = {}
        self.node = socket.gethostname()
        self.attempt = 1

    def start(self, cell: str, mode: str) -> None:
        """``cell_start``: a part begins training here (the Train page's node / attempt columns)."""
        self.emit("cell_start", cell=cell, mode=mode, node=self.node, attempt=self.attempt)

    def advance(self, steps: int, images: int) -> float:
        """Count finished steps; returns images/s since the last call."""
        self.done += steps
        self.session_done += steps
        t_prev, _ = self.window
        now = time.perf_counter()
        self.window = (now, 0)
        return images / (now - t_prev) if now > t_prev else 0.0

    def skip(self, steps: int) -> None:
        """Steps already done before this process (a resumed cell)."""
        self.done += steps

    def eta(self) -> float | None:
        if self.session_done == 0:
            return None
        rate = (time.perf_counter() - self.t0) / self.session_done
        return max(0.0, (self.total - self.done) * rate)

    def emit(self, event: str, **fields: Any) -> None:
        eta = self.eta()
        record = {"time": now_iso(), "event": event, **self.context, **fields,
                  "steps_done": self.done, "steps_total": self.total,
                  "eta_s": round(eta, 1) if eta is not None else None}
        if self.file is not None:
            with open(self.file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
        self._show(record)
        if self.callback is not None:
            self.callback(record)

    def _show(self, r: dict[str, Any]) -> None:
        ev = r["event"]
        if ev == "step" and not self.tty:
            return
        eta = r.get("eta_s")
        eta_txt = f"ETA {int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else ""
        if ev in ("step", "epoch"):
            loss = r.get("loss")
            text = (f"{r.get('cell')} epoch {r.get('epoch')}/{r.get('epochs')} "
                    f"step {r.get('step')}/{r.get('steps')} "
                    f"loss {loss:.4f} " if loss is not None else f"{r.get('cell')} ")
            text += f"{r.get('img_s') or 0:.0f} img/s {eta_txt}"
        else:
            text = f"{ev} {r.get('cell') or ''} {r.get('reason') or r.get('message') or ''}".strip()
        if self.tty:
            end = "" if ev == "step" else "\n"
            self.stream.write("\r\033[K" + text + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
