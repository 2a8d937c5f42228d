"""The demo PACS: ``python -m core pacs serve`` started for the app and filled with the
phantom's test studies, so that case review's PACS source works on a fresh machine.

The server is a child of the app that stops with it, three ways: the app stops it on
exit (:meth:`DemoPacs.stop`, registered with :mod:`atexit` by the page); ``serve
--stop-with <app pid>`` stops Orthanc within a second of the app's process ending, even
when it was killed outright; and Orthanc itself gets SIGTERM if ``serve`` dies
(:func:`core.pacs.server.local_pacs`). No Orthanc outlives the app.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import PacsError
from core.pacs.client import PacsClient
from core.pacs.push import PushReport, push_files
from core.pacs.server import START_SECONDS, missing_orthanc, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
_READY = "local PACS (loopback only): "
DICOM_SUFFIXES = (".dicom", ".dcm")


@dataclass
class DemoPacs:
    """A running ``pacs serve``: its DICOMweb URL, process and storage folder."""

    url: str
    process: subprocess.Popen
    storage: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM ``serve`` (which stops Orthanc) and wait; SIGKILL if it lingers."""
        stop_process(self.process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo_pacs(storage: str | Path, owner_pid: int, seconds: float = START_SECONDS) -> DemoPacs:
    """Start ``python -m core pacs serve`` on a free loopback port, stopping when
    ``owner_pid`` ends; returns once it answers, or raises PacsError with its last words."""
    missing = missing_orthanc()
    if missing:
        raise PacsError(missing)
    storage = Path(storage).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    log = storage / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "pacs", "serve", "--port", str(_free_port()),
             "--storage", str(storage), "--stop-with", str(owner_pid)],
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + seconds + 5
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines()
        ready = [ln for ln in lines if ln.startswith(_READY)]
        if ready:
            return DemoPacs(ready[0].removeprefix(_READY).strip(), proc, storage)
        if proc.poll() is not None:
            last = next((ln for ln in reversed(lines) if ln.strip()), f"exit code {proc.returncode}")
            raise PacsError(f"the local PACS did not start: {last.removeprefix('error: ')}", storage)
        time.sleep(0.2)
    stop_process(proc)
    raise PacsError(f"the local PACS did not answer within {seconds:.0f} s (log: {log})", storage)


def dicom_files(paths: Iterable[str | Path]) -> list[Path]:
    """The DICOM files among ``paths`` (a phantom's CDD-CESM-profile images are JPEGs)."""
    return [Path(p) for p in paths if Path(p).suffix.lower() in DICOM_SUFFIXES]


def fill(url: str, files: Iterable[str | Path]) -> PushReport:
    """Store ``files`` (their DICOMs) in the PACS at ``url``."""
    return push_files(dicom_files(files), PacsClient(url))
