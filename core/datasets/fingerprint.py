"""The dataset hash a run records: everything that decides an image's cell and label.

``--resume`` refuses a dataset whose hash changed, so that one run never
holds cells trained under two routings or two labellings.  The hash covers
the manifest's columns (paths relative to the dataset, labels, views,
split), the ROI shapes (``roi_shapes``: an edited finding box changes the
routing), the resulting ``roi`` and ``view_name`` columns, and the bytes of
every mask file (an edited mask changes the routing and the finder's
targets without changing its path).  The images' own bytes are not read:
they decide no cell or label, and hashing a large archive's pixels at every
start would cost minutes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from core.datasets.manifest import COLUMNS

ROUTING_COLUMNS: tuple[str, ...] = ("roi_shapes", "roi", "view_name")


def _file_digest(path: str) -> str:
    if not path:
        return ""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def dataset_hash(df: pd.DataFrame, root: Path | None) -> str:
    """SHA-256 over the manifest, its ROI shapes and flags, and its mask files' bytes."""
    columns = list(COLUMNS) + [c for c in ROUTING_COLUMNS if c in df.columns]
    table = df[columns].copy()
    table["mask_sha256"] = table["mask_path"].map(_file_digest)
    if root is not None:
        base = root if root.is_dir() else root.parent

        def rel(p: str) -> str:
            try:
                return str(Path(p).relative_to(base)) if p else ""
            except ValueError:
                return p
        table["image_path"] = table["image_path"].map(rel)
        table["mask_path"] = table["mask_path"].map(rel)
    text = table.sort_values("image_path").to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()
