"""The executor options: where a command's work runs (this process, or Ray).

``train`` reads ``--executor``, ``--ray-address``, ``--gpus-per-cell`` and
``--cpus-per-cell``; ``evaluate --dataset`` and ``predict --manifest`` read the
first two.  The Train page builds its command with :func:`executor_args`, so
what it shows is what the command line reads.
"""
from __future__ import annotations

import argparse

from core.scale.batch import EXECUTORS

LOCAL = "local"


def add_batch_executor_arguments(p: argparse.ArgumentParser) -> None:
    """``--executor`` and ``--ray-address`` of the commands that predict a whole dataset."""
    p.add_argument("--executor", choices=EXECUTORS, default=LOCAL,
                   help="where the images are preprocessed and predicted: this process "
                        "(local, default) or Ray Data workers (ray)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --executor ray: join this Ray cluster (HOST:PORT of its head); "
                        "default: start a local Ray on this machine for the command")


def executor_args(executor: str = LOCAL, address: str | None = None,
                  gpus: float | None = None, cpus: int | None = None) -> list[str]:
    """``train``'s executor flags; each left out at its default (local, a local Ray, the
    command's own GPU and CPU shares), and all of them for the local executor."""
    if executor == LOCAL:
        return []
    args = ["--executor", executor]
    if address:
        args += ["--ray-address", address]
    if gpus is not None:
        args += ["--gpus-per-cell", f"{gpus:g}"]
    if cpus is not None:
        args += ["--cpus-per-cell", str(int(cpus))]
    return args
