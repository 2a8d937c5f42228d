"""``python -m core pacs serve|push``: the local demo PACS and filling a PACS.

``serve`` runs Orthanc with DICOMweb on 127.0.0.1 in the foreground until
Ctrl-C or SIGTERM, then stops it; ``push`` stores a folder's DICOM files over
STOW-RS and lists every refusal. The work is in :mod:`core.pacs`.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from core.errors import PacsError
from core.pacs import ENV_URL, PacsClient, local_pacs, push_folder


class _Stop(Exception):
    """SIGTERM or Ctrl-C, raised inside the ``with`` so that Orthanc is stopped on the way out."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pacs`` command and its ``serve`` and ``push`` sub-commands."""
    p = subparsers.add_parser("pacs", help="run the local demo PACS (Orthanc) or push DICOM files to a PACS",
                              description="A local DICOMweb PACS for the demo and the tests, and STOW-RS uploads.")
    sub = p.add_subparsers(dest="pacs_command", required=True)
    serve = sub.add_parser("serve", help="run a loopback-only Orthanc with DICOMweb until Ctrl-C / SIGTERM",
                           description="Run Orthanc with DICOMweb at http://127.0.0.1:PORT/dicom-web, "
                                       "reachable from this machine only, in the foreground.")
    serve.add_argument("--port", type=int, default=8042, help="HTTP port on 127.0.0.1 (default 8042)")
    serve.add_argument("--storage", type=Path, required=True, help="folder for Orthanc's database and files")
    serve.add_argument("--stop-with", type=int, default=None, metavar="PID",
                       help="stop when process PID ends (the app that started this server)")
    serve.set_defaults(func=run_serve)
    push = sub.add_parser("push", help="store every DICOM file under a folder (STOW-RS)",
                          description="Store every DICOM file under DIR in a PACS; other files are skipped. "
                                      "Exits non-zero when the PACS refused any file.")
    push.add_argument("folder", type=Path, metavar="DIR")
    push.add_argument("--url", default=None, help=f"DICOMweb root (default ${ENV_URL})")
    push.set_defaults(func=run_push)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; SIGTERM and Ctrl-C both stop Orthanc before returning.

    The first signal stops the server; later ones are ignored, so that a second
    Ctrl-C cannot cut the stop short and leave Orthanc running.
    """
    def on_signal(signum, frame):
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise _Stop

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if args.stop_with:
        threading.Thread(target=_stop_with, args=(args.stop_with,), daemon=True).start()
    try:
        with local_pacs(args.port, args.storage) as pacs:
            print(f"local PACS (loopback only): {pacs.url}", flush=True)
            print(f"  storage {pacs.storage}, log {pacs.log}; Ctrl-C to stop", flush=True)
            code = pacs.process.wait()
            raise PacsError(f"Orthanc stopped by itself (exit code {code}); see {pacs.log}", pacs.url)
    except _Stop:
        print("local PACS stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_with(pid: int, every: float = 1.0) -> None:
    """SIGTERM this process (stopping Orthanc as Ctrl-C does) once ``pid`` is gone."""
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        except PermissionError:  # alive, another user's
            pass
        time.sleep(every)


def run_push(args: argparse.Namespace) -> int:
    """Push the folder and print stored / refused counts, one line per refusal."""
    client = PacsClient(args.url)
    report = push_folder(args.folder, client)
    for path, reason in report.refused:
        print(f"refused: {path}: {reason}", file=sys.stderr)
    print(f"{client.url}: stored {len(report.stored)}, refused {len(report.refused)}"
          f" ({len(report.skipped)} non-DICOM file(s) skipped)")
    return 1 if report.refused else 0
