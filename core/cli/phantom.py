"""``python -m core phantom``: write a synthetic dataset in a real layout.

The phantom is the demo and test data of the whole app, so the command only
parses arguments and prints what was written; all the work is in
:mod:`core.phantom`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from core.phantom import DIFFICULTIES, PROFILES, write_phantom


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``phantom`` sub-command."""
    p = subparsers.add_parser(
        "phantom", help="write a seeded synthetic dataset (VinDr or CDD-CESM layout)",
        description="Write a small seeded synthetic mammography dataset in the real on-disk "
                    "layout of a profile, with the composition of the paper's Tables 1-4. "
                    "Synthetic: never evidence about patients.")
    p.add_argument("--profile", choices=sorted(PROFILES), default="vindr")
    p.add_argument("--studies", type=int, default=50, help="studies (patients), four views each")
    p.add_argument("--size", type=int, default=512, help="long (vertical) side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", default="moderate",
                   help=f"{' | '.join(DIFFICULTIES)} or a number 0 (easy) .. 1 (subtle)")
    p.add_argument("--out", type=Path, required=True, help="folder to create (an earlier phantom there is replaced)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores for large runs)")
    p.add_argument("--json", action="store_true", help="print the composition as JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the phantom and print its composition."""
    start = time.perf_counter()
    summary = write_phantom(args.out, args.profile, args.studies, size=args.size, seed=args.seed,
                            difficulty=args.difficulty, workers=args.workers)
    if args.json:
        data = {k: v for k, v in summary.to_dict().items() if k != "records"}
        print(json.dumps(data, indent=1, sort_keys=True))
    else:
        print(summary.describe())
        print(f"  written in {time.perf_counter() - start:.1f} s")
    return 0
