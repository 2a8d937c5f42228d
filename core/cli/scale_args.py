"""The executor options: where a command's work runs (this process, or Ray).

``train`` reads ``--executor``, ``--ray-address``, ``--gpus-per-cell`` and
``--cpus-per-cell``; ``evaluate --dataset`` and ``predict --manifest`` read the
first two.  The Train page builds its command with :func:`executor_args`, so
what it shows is what the command line reads.
"""
from __future__ import annotations

import argparse

from core.cli.argtypes import POSITIVE_FLOAT, POSITIVE_INT
from core.scale.batch import EXECUTORS

LOCAL = "local"
EXECUTOR_OPTIONS = ("executor", "ray_address", "gpus_per_cell", "cpus_per_cell")
"""``train``'s executor options by their argparse dest."""


def add_executor_arguments(p: argparse.ArgumentParser, executor_help: str,
                           per_task: bool = False) -> None:
    """``--executor`` and ``--ray-address`` (and with ``per_task``, ``train``'s GPU and CPU
    shares per Ray task): where the command's work runs, not what it computes, so none of
    them is a TrainConfig field or part of run.json's config (a run started on Ray may be
    resumed on one machine, and the other way round)."""
    p.add_argument("--executor", choices=EXECUTORS, default=LOCAL, help=executor_help)
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --executor ray: join this Ray cluster (HEAD:6379, or "
                        "ray://HEAD:10001); default: start a local Ray sized to this machine "
                        "for the command and stop it at the end")
    if not per_task:
        return
    p.add_argument("--gpus-per-cell", type=POSITIVE_FLOAT, metavar="F",
                   help="with --executor ray: GPUs per task, fractions allowed (0.5: two cells "
                        "share a GPU); default 1 where the cluster has GPUs, none otherwise")
    p.add_argument("--cpus-per-cell", type=POSITIVE_INT, metavar="N",
                   help="with --executor ray: CPUs per task, also its torch threads; default "
                        "all CPUs of the smallest node without GPUs, or a GPU node's CPUs per "
                        "GPU times --gpus-per-cell")


def add_batch_executor_arguments(p: argparse.ArgumentParser) -> None:
    """``--executor`` and ``--ray-address`` of the commands that predict a whole dataset."""
    add_executor_arguments(p, "where the images are preprocessed and predicted: this process "
                              "(local, default) or Ray Data workers (ray)")


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
