"""``ray_session``: join a Ray cluster or start a local one, and always leave it.

Why a context manager of our own around ``ray.init``: a command must never
leave a Ray process behind (``ray.shutdown`` on every exit, exceptions and
Ctrl-C included), must fail in one line on an address nobody answers on
(``ray.init`` itself retries a dead address for minutes; a TCP probe with a
deadline answers in seconds), and must keep the caller's SIGTERM / SIGINT
handlers (``ray.init`` replaces SIGTERM's, which would turn a cancel into an
exit that skips writing the run's state).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from core.errors import ScaleError

INSTALL_HINT = "--executor ray needs Ray: pip install 'ray[data]==2.60.*'"
PROBE_TIMEOUT_S = 10.0
DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001
AUTH_REFUSED = "InvalidAuthToken"
AUTH_HINT = ("the Ray cluster refused this machine's token: export RAY_AUTH_MODE=token, with "
             "the head node's ~/.ray/auth_token copied here (or RAY_AUTH_TOKEN set to it)")


def import_ray() -> ModuleType:
    """``ray``, or a one-line :class:`ScaleError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ScaleError(INSTALL_HINT) from None
    return ray


def probe_target(address: str) -> tuple[str, int] | None:
    """``(host, port)`` to probe before ``ray.init``; None for ``auto`` / ``local``."""
    if address in ("auto", "local"):
        return None
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, ""
    try:
        number = int(port) if port else (DEFAULT_CLIENT_PORT if client else DEFAULT_GCS_PORT)
    except ValueError:
        raise ScaleError("not a Ray address (HOST:PORT or ray://HOST:PORT)", address) from None
    return host.strip("[]") or "127.0.0.1", number


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Refuse an address nobody listens on: at once when the host refuses the connection,
    after ``timeout_s`` when nothing answers at all."""
    target = probe_target(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            return
    except OSError as err:
        why = "timed out" if isinstance(err, TimeoutError) else err.strerror or str(err)
    raise ScaleError(f"no Ray cluster answers there ({why}); start one with `ray start --head` "
                     "or leave out --ray-address to use this machine", address)


def local_cpus() -> int:
    """The cores this process may run on (a container's or ``taskset``'s limit, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Yield ``ray`` connected to ``address`` (a cluster), or to a local Ray sized to this
    machine (``num_cpus``: all its cores when None) when ``address`` is None.

    On any exit the driver leaves the cluster (``ray.shutdown``); a local Ray's
    processes stop with it.  The caller's signal handlers are kept.
    """
    ray = import_ray()
    held: list[str] = []
    if address:
        probe(address)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if address:  # the workers get this checkout's core package, not a shared path's
            with _stderr_held_back() as held:  # Ray's C++ client logs a line per retry on fd 2
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                         runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
        else:
            ray.init(num_cpus=num_cpus or local_cpus(), include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
    except (Exception, SystemExit) as err:  # Ray raises many kinds (a dead GCS: SystemExit)
        ray.shutdown()
        if address and AUTH_REFUSED in "".join(held) + str(err):
            raise ScaleError(AUTH_HINT, address) from None
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ScaleError(f"cannot start or join Ray ({first})", address) from None
    finally:
        _restore(handlers)
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def _stderr_held_back() -> Iterator[list[str]]:
    """Hold back what is written to file descriptor 2 (C++ code included) inside the block;
    it reaches stderr only when the block succeeds, so a failure is the one line we raise.
    The yielded list gets the held text either way (to read why a join failed)."""
    sys.stderr.flush()
    saved = os.dup(2)
    text: list[str] = []
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text.append(held.read().decode(errors="replace"))
        sys.stderr.write(text[0])


def _restore(handlers: dict[int, object]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers, and ray.init changed none elsewhere
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)
