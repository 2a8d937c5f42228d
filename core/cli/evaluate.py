"""``python -m core evaluate checkpoints/NAME [--json] [--boot N] [--seed S]``.

Reads the run's ``predictions.csv`` (never its models), writes
``metrics.json`` and prints the paper-style tables, or the JSON with --json.
"""
from __future__ import annotations

import argparse
import json

from core.evaluate import evaluate_run, format_report


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics, CIs and McNemar for a run's predictions",
        description="Evaluate a run folder's predictions.csv and write metrics.json.")
    p.add_argument("run_dir", help="run folder, e.g. checkpoints/NAME")
    p.add_argument("--json", action="store_true", help="print metrics.json content instead of tables")
    p.add_argument("--boot", type=_non_negative, default=1000,
                   help="patient-level bootstrap resamples (0 = no CIs; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, n_boot=args.boot, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(format_report(result))
    return 0
