"""``python -m core evaluate checkpoints/NAME [--dataset DIR [--split test|train|all]
[--executor local|ray [--ray-address ADDR]]] [--json]``.

Without ``--dataset``: reads the run's ``predictions.csv`` (never its
models), writes ``metrics.json`` and prints the paper-style tables, or the
JSON with --json.  With ``--dataset``: external validation
(:mod:`core.predict.external`): the run's models predict another dataset, and the
result goes to ``checkpoints/NAME/external/<dataset>-<split>/``, leaving the
run's own ``metrics.json`` as it was; ``--executor ray`` predicts it on Ray Data
workers (:mod:`core.scale.batch`), writing the same files.
"""
from __future__ import annotations

import argparse
import json

from core.cli.argtypes import NON_NEGATIVE_INT
from core.cli.scale_args import LOCAL, add_batch_executor_arguments
from core.errors import MammoError
from core.evaluate import evaluate_run, format_report
from core.predict.external import SPLITS, validate_external


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics, CIs and McNemar for a run's predictions",
        description="Evaluate a run folder's predictions.csv and write metrics.json.")
    p.add_argument("run_dir", help="run folder, e.g. checkpoints/NAME")
    p.add_argument("--json", action="store_true", help="print metrics.json content instead of tables")
    p.add_argument("--boot", type=NON_NEGATIVE_INT, default=1000,
                   help="patient-level bootstrap resamples (0 = no CIs; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--dataset", default=None, metavar="DIR",
                   help="external validation: predict this dataset (VinDr-Mammo or CDD-CESM "
                        "folder, or a manifest CSV) with the run's models and evaluate it")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="which images of --dataset to use (default test)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the models run with --dataset (default: CUDA when present)")
    add_batch_executor_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        from core.scale.batch import manifest_executor

        with manifest_executor(args.executor, args.ray_address) as predict:
            result = validate_external(args.run_dir, args.dataset, args.split, args.device,
                                       n_boot=args.boot, seed=args.seed, predict=predict)
    elif args.executor != LOCAL or args.ray_address:
        raise MammoError("--executor / --ray-address need --dataset: without it evaluate reads "
                         "the run's predictions.csv and runs no model")
    else:
        result = evaluate_run(args.run_dir, n_boot=args.boot, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(format_report(result))
    return 0
