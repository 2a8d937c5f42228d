"""External validation: a run's grids tested on another dataset, in any supported layout.

This is how a grid trained on VinDr-Mammo is tested on CDD-CESM: the other
dataset is read by the same adapters as training data (:mod:`core.datasets`
detects the layout), every image is routed and predicted as the run's own
test split is (:func:`core.predict.predict_manifest`), the Grad-CAM pointing
is measured on its malignant ROI images, and the table is evaluated like the
run's own (:func:`core.evaluate.evaluate_external`).

Everything goes to ``<run>/external/<dataset>-<split>/`` (``predictions.csv``,
``cam_pointing.json``, ``dataset.json``, ``metrics.json``), each written
atomically; the run's own ``metrics.json`` is never overwritten, so the
result the run was trained for stays what it was.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import MammoError, ManifestError
from core.runfolder.atomic import atomic_write_bytes, atomic_write_json

SPLITS: tuple[str, ...] = ("test", "train", "all")


def dataset_name(root: Path) -> str:
    """A folder-safe name for a dataset: its folder's name (a CSV's own folder for a CSV)."""
    folder = root if root.is_dir() else root.parent
    stem = folder.name if root.is_dir() or root.name == "manifest.csv" else f"{folder.name}-{root.stem}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "dataset"


def select_split(df: pd.DataFrame, split: str, source: Path) -> pd.DataFrame:
    """The rows of ``split`` (``all`` keeps every row); none is a one-line ManifestError."""
    if split not in SPLITS:
        raise MammoError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    rows = df if split == "all" else df[df["split"] == split]
    if rows.empty:
        raise ManifestError(f"no {split} images in this dataset "
                            f"(it has {', '.join(sorted(set(df['split'])))}); try --split all",
                            source)
    return rows.reset_index(drop=True)


def _is_training_dataset(run_info: dict[str, Any], root: Path) -> bool:
    trained_on = run_info.get("dataset_path")
    return bool(trained_on) and Path(trained_on).resolve() == root.resolve()


def validate_external(run_dir: str | Path, dataset: str | Path, split: str = "test",
                      device: str = "auto", n_boot: int = 1000, seed: int = 0,
                      split_seed: int = 0) -> dict[str, Any]:
    """Predict ``dataset``'s ``split`` with the run's grids and evaluate it; returns the metrics.

    The result is the run's own evaluation format plus ``dataset``:
    ``{"name", "path", "layout", "split", "n_images", "unpredicted",
    "synthetic", "training_dataset"}``; ``unpredicted`` counts (image, grid)
    pairs no model of the run serves (as ``run.json`` does).  ``split_seed`` seeds the split of
    layouts that ship none (CDD-CESM), as in training.
    """
    from core.datasets import LoadOptions, detect_layout
    from core.evaluate import evaluate_external, external_folder
    from core.evaluate.constants import DATASET_FILE, PREDICTIONS_FILE
    from core.phantom import is_synthetic
    from core.predict import Predictor, predict_manifest
    from core.predict.cam_pointing import CAM_POINTING_FILE, run_cam_pointing
    from core.roifinder.proposals import write_proposals

    predictor = Predictor(run_dir, device)  # a bad run fails before the dataset is read
    layout, root = detect_layout(dataset)
    df = select_split(layout.load(root, LoadOptions(int(split_seed))), split, root)
    predictions = predict_manifest(predictor, df)
    if predictions.empty:
        raise MammoError(f"no image of {root} could be predicted: the run has no model for "
                         f"its views ({', '.join(sorted(set(df['view_name'])))})")
    name = f"{dataset_name(root)}-{split}"
    folder = external_folder(predictor.run.path, name)
    info = {"name": name, "path": str(root.resolve()), "layout": layout.name, "split": split,
            "n_images": len(df), "unpredicted": int(predictions.attrs.get("unpredicted", 0)),
            "synthetic": is_synthetic(root),
            "training_dataset": _is_training_dataset(predictor.run.info, root)}
    atomic_write_bytes(folder / PREDICTIONS_FILE, predictions.to_csv(index=False).encode())
    write_proposals(folder, predictions)  # the ROI finder's per-image table, when it has one
    atomic_write_json(folder / CAM_POINTING_FILE, run_cam_pointing(predictor, df))
    atomic_write_json(folder / DATASET_FILE, info)
    return evaluate_external(predictor.run.path, name, n_boot=n_boot, seed=seed)
