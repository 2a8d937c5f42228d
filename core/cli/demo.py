"""``python -m core demo``: phantom data and demo grids, no download needed."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.demo import plan_for, run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the synthetic datasets and train the demo grids (CPU)")
    p.add_argument("--tiny", action="store_true",
                   help="one small phantom, one architecture, 64 px, 1 epoch (a quick look, tests)")
    p.add_argument("--epochs", type=int, default=None, help="override the plan's epochs")
    p.add_argument("--data", type=Path, default=None, help="data root (default $MAMMOROUTE_DATA or data/)")
    p.add_argument("--checkpoints", type=Path, default=None,
                   help="checkpoints root (default $MAMMOROUTE_CHECKPOINTS or checkpoints/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runs = run_demo(plan_for(args.tiny, args.epochs), args.data, args.checkpoints)
    print(f"demo ready: {len(runs)} run(s): " + ", ".join(r.name for r in runs))
    print("SYNTHETIC PHANTOM DATA: a demonstration, not evidence about real patients.")
    return 0
