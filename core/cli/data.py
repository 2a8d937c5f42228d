"""``python -m core data describe|manifest DATASET``: look at a dataset from the shell.

``describe`` prints the composition as the paper's Tables 1–4 (or as JSON);
``manifest`` writes the manifest any layout is read into, so it can be
inspected, edited and handed back as a plain CSV.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from core.datasets import load_dataset
from core.datasets.describe import describe, render_text
from core.errors import ManifestError
from core.runfolder.atomic import atomic_write_bytes

DERIVED_COLUMNS: tuple[str, ...] = ("roi", "view_name")  # recomputed when read back


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` with its two sub-commands."""
    parser = subparsers.add_parser("data", help="describe a dataset or export its manifest")
    actions = parser.add_subparsers(dest="data_command", required=True)
    show = actions.add_parser("describe", help="composition like the paper's Tables 1-4")
    _dataset_arguments(show)
    show.add_argument("--json", action="store_true", help="print the composition as JSON")
    show.set_defaults(func=run_describe)
    export = actions.add_parser("manifest", help="write the dataset's manifest CSV")
    _dataset_arguments(export)
    export.add_argument("--out", required=True, type=Path, help="CSV file to write")
    export.set_defaults(func=run_manifest)


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path,
                        help="VinDr-Mammo folder, CDD-CESM folder or manifest CSV")
    parser.add_argument("--seed", type=int, default=0,
                        help="train/test split seed (layouts without a split: CDD-CESM)")
    parser.add_argument("--cdd-type", choices=("DM", "CESM"), default="DM",
                        help="CDD-CESM images: low-energy DM (the paper's) or subtracted CESM")


def _load(args: argparse.Namespace) -> pd.DataFrame:
    return load_dataset(args.dataset, split_seed=args.seed, cdd_type=args.cdd_type)


def run_describe(args: argparse.Namespace) -> int:
    summary = describe(_load(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_text(summary), end="")
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    df = _load(args)
    out = args.out.expanduser().resolve()
    write_manifest(df, out)
    print(f"wrote {len(df)} images to {out}")
    return 0


def write_manifest(df: pd.DataFrame, out: Path) -> None:
    """Write atomically, paths relative to the CSV when they lie under its folder."""
    table = df.drop(columns=[c for c in DERIVED_COLUMNS if c in df.columns]).copy()
    if "empty_mask_path" in table.columns:  # the user's file goes back; reading clears it again
        empty = table.pop("empty_mask_path").fillna("").astype(str)
        table["mask_path"] = table["mask_path"].where(table["mask_path"] != "", empty)
    for column in ("image_path", "mask_path"):
        table[column] = table[column].map(lambda p: _relative(p, out.parent))
    if not out.parent.is_dir():
        raise ManifestError("folder does not exist", out.parent)
    atomic_write_bytes(out, table.to_csv(index=False).encode("utf-8"))


def _relative(path: str, folder: Path) -> str:
    if not path:
        return ""
    p = Path(path)
    try:
        return p.relative_to(folder).as_posix()
    except ValueError:
        return str(p)
