"""``split.json``: which images and patients each model of a run trained and was validated on.

Every trained model's folder (the warm-start model, each cell, each CV fold's
models, the ROI finder) holds one, written atomically, so anyone can check
from the files alone that no model was selected, calibrated or thresholded
on a patient it, or a model it started from, had trained on
(:func:`leaks`).  Image ids are the manifest's ``image_path`` values.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import CheckpointError
from core.runfolder.atomic import atomic_write_json
from core.runfolder.layout import read_json

SPLIT_FILE = "split.json"


def _side(rows: pd.DataFrame) -> dict[str, list[str]]:
    return {"images": sorted(map(str, rows["image_path"])),
            "patients": sorted(set(map(str, rows["patient_id"])))}


def write_split(folder: Path, train: pd.DataFrame, validation: pd.DataFrame,
                started_from: str | None = None) -> None:
    """Record a model's training and validation rows; ``started_from`` names the sibling
    folder whose weights it started from (the warm-start model), None from scratch."""
    atomic_write_json(Path(folder) / SPLIT_FILE,
                      {"train": _side(train), "validation": _side(validation),
                       "started_from": started_from})


def read_split(folder: Path) -> dict[str, Any]:
    """A model's split record (CheckpointError naming the file when absent or unreadable)."""
    return read_json(Path(folder) / SPLIT_FILE)


def leaks(run_dir: Path) -> list[str]:
    """One line per model whose validation patients it, or a model it started from,
    trained on; empty when every split.json under ``run_dir`` is clean."""
    problems = []
    for file in sorted(Path(run_dir).rglob(SPLIT_FILE)):
        folder = file.parent
        record = read_split(folder)
        val = set(record["validation"]["patients"])
        chain, seen = [(folder, record)], {folder}
        while chain[-1][1].get("started_from"):
            parent = folder.parent / chain[-1][1]["started_from"]
            if parent in seen:
                raise CheckpointError("split.json's started_from forms a cycle", file)
            seen.add(parent)
            chain.append((parent, read_split(parent)))
        for source, rec in chain:
            shared = val & set(rec["train"]["patients"])
            if shared:
                who = "itself" if source == folder else f"{source.name}, which it started from"
                problems.append(f"{folder.relative_to(run_dir)}: {len(shared)} validation "
                                f"patient(s) trained on by {who} (e.g. {sorted(shared)[0]})")
    return problems
