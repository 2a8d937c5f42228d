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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.datasets import LoadOptions
from core.errors import MammoError, ManifestError
from core.runfolder.atomic import atomic_write_json
from core.runfolder.layout import RUN_FILE

if TYPE_CHECKING:
    from core.predict import Predictor

SPLITS: tuple[str, ...] = ("test", "train", "all")
ManifestPredict = Callable[["Predictor", pd.DataFrame], pd.DataFrame]
"""Predicts a manifest with a run's models: :func:`core.predict.predict_manifest` in this
process, or :func:`core.scale.batch.predict_manifest_ray` on Ray."""


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


def validate_external(run_dir: str | Path, dataset: str | Path, split: str = "test",
                      device: str = "auto", n_boot: int = 1000, seed: int = 0,
                      options: LoadOptions | None = None,
                      predict: ManifestPredict | None = None) -> dict[str, Any]:
    """Predict ``dataset``'s ``split`` with the run's grids and evaluate it; returns the metrics.

    The result is the run's own evaluation format plus ``dataset``:
    ``{"name", "path", "layout", "split", "n_images", "unpredicted",
    "synthetic", "training_dataset", "options"}``; ``unpredicted`` counts (image, grid)
    pairs no model of the run serves (as ``run.json`` does).  ``options`` (how the
    dataset is read) default to the run's own when ``dataset`` is the one it was
    trained on (its "test" split is then the run's test split), else to the defaults.
    ``predict`` scores the images (default: :func:`~core.predict.predict_manifest` here).
    """
    from core.datasets import detect_layout
    from core.datasets.run_data import is_run_dataset, run_options
    from core.evaluate import evaluate_external, external_folder
    from core.evaluate.constants import DATASET_FILE
    from core.phantom import is_synthetic
    from core.predict import Predictor, predict_manifest
    from core.predict.cam_pointing import CAM_POINTING_FILE, run_cam_pointing
    from core.predict.manifest import write_predictions

    predictor = Predictor(run_dir, device)  # a bad run fails before the dataset is read
    layout, root = detect_layout(dataset)
    own = is_run_dataset(predictor.run.info, root)
    if options is None:
        options = (run_options(predictor.run.info, predictor.run.path / RUN_FILE).options
                   if own else LoadOptions())
    df = select_split(layout.load(root, options), split, root)
    predictions = (predict or predict_manifest)(predictor, df)
    if predictions.empty:
        raise MammoError(f"no image of {root} could be predicted: the run has no model for "
                         f"its views ({', '.join(sorted(set(df['view_name'])))})")
    name = f"{dataset_name(root)}-{split}"
    folder = external_folder(predictor.run.path, name)
    info = {"name": name, "path": str(root.resolve()), "layout": layout.name, "split": split,
            "n_images": len(df), "unpredicted": int(predictions.attrs.get("unpredicted", 0)),
            "synthetic": is_synthetic(root),
            "training_dataset": own, "options": options.to_json()}
    write_predictions(folder, predictions)  # with the ROI finder's table, when it has one
    atomic_write_json(folder / CAM_POINTING_FILE, run_cam_pointing(predictor, df))
    atomic_write_json(folder / DATASET_FILE, info)
    return evaluate_external(predictor.run.path, name, n_boot=n_boot, seed=seed)
