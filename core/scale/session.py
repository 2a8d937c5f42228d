"""One Ray session per command: join ``--ray-address`` or start a local Ray, always shut down.

A command that uses Ray must leave no Ray process behind, whether it ends
well, fails or is interrupted, so the session is a context manager whose exit
always calls ``ray.shutdown()`` (which stops the local Ray it started).  An
address that does not answer is one line naming it, within 30 s: the
address is first probed with a plain TCP connection, because ``ray.init``
alone can wait for minutes on a dead head node.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import ScaleError

INSTALL_HINT = "--executor ray needs Ray: pip install 'ray[data]==2.60.*'"
CONNECT_TIMEOUT_S = 10.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ScaleError(INSTALL_HINT) from None
    return ray


def _probe(address: str) -> None:
    """Fail fast when ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts no TCP connection."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ScaleError(f"no Ray cluster answers there ({err.strerror or err})",
                         address) from None


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module with a session open: ``address`` joined, or a local Ray of
    ``num_cpus`` CPUs (default: every core of this machine) started; shut down on exit."""
    ray = _import_ray()
    if address:
        _probe(address)
        kwargs: dict[str, Any] = {"address": address}
    else:
        kwargs = {"num_cpus": num_cpus or os.cpu_count() or 1, "include_dashboard": False}
    try:
        ray.init(log_to_driver=False, **kwargs)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError, …
        ray.shutdown()
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ScaleError(f"cannot {'join' if address else 'start'} Ray: {first}",
                         address) from None
    try:
        yield ray
    finally:
        ray.shutdown()
