"""A local Orthanc with DICOMweb: the demo PACS and the one the tests talk to.

It is a real PACS, not a mock, so the client code is exercised against a
server that behaves like the ones in hospitals. It is a loopback-only demo:
remote HTTP clients are refused (Orthanc 1.10 has no bind-address option, so
``RemoteAccessAllowed: false`` is what keeps other machines out), its DICOM
port is off, and it is always stopped by whoever started it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import PacsError

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
DEBIAN_PACKAGES = "orthanc orthanc-dicomweb"
START_SECONDS = 30.0
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class LocalPacs:
    """A running local Orthanc: where to reach it and the process to watch."""

    url: str  # the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web
    port: int
    storage: Path
    log: Path
    process: subprocess.Popen


def missing_orthanc() -> str | None:
    """One line saying what to install when Orthanc or its DICOMweb plugin is
    absent, else None; the command and the tests both need exactly this check."""
    missing = [str(p) for p in (ORTHANC_BINARY, DICOMWEB_PLUGIN) if not p.exists()]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not found: install the Debian packages "
            f"'{DEBIAN_PACKAGES}' (apt-get install {DEBIAN_PACKAGES})")


def orthanc_config(port: int, storage: Path) -> dict:
    """The Orthanc configuration of the loopback demo PACS.

    Authentication is off because only loopback clients are let in; jobs are not
    saved so a stopped server leaves only its stored instances behind; HTTP
    compression is off because gzipping already-compressed pixel data on the way
    to the same machine costs CPU and saves nothing.
    """
    return {
        "Name": "MammoRoute local PACS",
        "HttpPort": port,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "SaveJobs": False,
        "HttpCompressionEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }


def _port_taken(port: int) -> bool:
    """Whether something already listens on ``port``: Orthanc would then fail to
    bind, and the readiness check would mistake the other server for it."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/dicom-web/studies?limit=1", timeout=2) as r:
            return r.status in (200, 204)
    except OSError:  # refused, not yet listening, or an HTTP error status
        return False


def _last_log_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log written"
    errors = [ln for ln in lines if ln.startswith("E")]
    return (errors or lines or ["empty log"])[-1].strip()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it ends (Linux
    ``PR_SET_PDEATHSIG``), so an Orthanc whose owner was killed outright does not stay."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the owner's own stop has to do
        pass


def stop_process(proc: subprocess.Popen, seconds: float = STOP_SECONDS) -> None:
    """SIGTERM Orthanc's process group and wait; SIGKILL it if it lingers, so
    nothing is ever left running."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(seconds)
        except ProcessLookupError:
            pass
    proc.wait()


@contextmanager
def local_pacs(port: int, storage: str | Path, start_seconds: float = START_SECONDS) -> Iterator[LocalPacs]:
    """Run Orthanc with DICOMweb at ``http://127.0.0.1:<port>/dicom-web`` for the
    duration of the ``with`` block.

    Returns only once the DICOMweb root answers (at most ``start_seconds``), and
    always stops the server on the way out, whatever happened inside. Its log is
    ``<storage>/orthanc.log``.
    """
    base = f"http://127.0.0.1:{port}"
    missing = missing_orthanc()
    if missing:
        raise PacsError(missing, base)
    if not 0 < port < 65536:
        raise PacsError(f"port {port} is not a TCP port", base)
    if _port_taken(port):
        raise PacsError(f"port {port} is already in use on 127.0.0.1", base)
    storage = Path(storage).resolve()
    try:
        storage.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PacsError(f"cannot create the storage folder: {err.strerror}", storage) from err
    log = storage / "orthanc.log"
    with tempfile.TemporaryDirectory(prefix="mammoroute-orthanc-") as tmp:
        config = Path(tmp) / "orthanc.json"
        config.write_text(json.dumps(orthanc_config(port, storage), indent=1))
        proc = subprocess.Popen([str(ORTHANC_BINARY), f"--logfile={log}", str(config)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent)
        try:
            _wait_ready(base, proc, log, start_seconds)
            yield LocalPacs(f"{base}/dicom-web", port, storage, log, proc)
        finally:
            stop_process(proc)


def _wait_ready(base: str, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PacsError(f"Orthanc exited at start (code {proc.returncode}): {_last_log_line(log)}", base)
        if _answers(base):
            return
        time.sleep(0.2)
    raise PacsError(f"Orthanc did not answer within {seconds:.0f} s (log: {log})", base)

