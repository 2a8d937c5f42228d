"""The run folder's ``run.json``: manifest loading, dataset hash, opening and writing a run."""
from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import core
from core.datasets import LoadOptions, read_dataset
from core.datasets.fingerprint import dataset_hash
from core.datasets.run_data import OPTIONS_KEY
from core.errors import TrainingError
from core.grid import modes_for
from core.phantom.write import is_synthetic
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_json
from core.train.carve import VALIDATION_RULE
from core.train.config import MIN_IMAGES, MIN_PER_CLASS, TrainConfig, class_counts, now_iso


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(core.__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def load_manifest(dataset: str | Path | pd.DataFrame, options: LoadOptions | None = None
                  ) -> tuple[pd.DataFrame, Path | None]:
    """A finalized manifest and the path it came from (None for an in-memory table).

    ``options`` (the defaults when None) reach the layouts that use them
    (CDD-CESM's drawn split and image type); an in-memory table is taken as it is.
    """
    if isinstance(dataset, pd.DataFrame):
        src = dataset.attrs.get("source")
        return dataset.reset_index(drop=True), Path(src) if src else None
    return read_dataset(dataset, options or LoadOptions()), Path(dataset).expanduser().resolve()


def _new_run_info(out_dir: Path, df: pd.DataFrame, source: Path | None, config: TrainConfig,
                  device: torch.device) -> dict[str, Any]:
    train = df[df["split"] == "train"]
    synthetic = config.synthetic if config.synthetic is not None else is_synthetic(source)
    name = (source.name if source.is_dir() else source.parent.name) if source else "in-memory"
    return {
        "name": out_dir.name, "dataset": name, "dataset_path": str(source) if source else None,
        "dataset_hash": dataset_hash(df, source),
        "validation_rule": VALIDATION_RULE, "synthetic": bool(synthetic),
        OPTIONS_KEY: config.load_options().to_json(),
        "arch": config.arch, "img_size": config.img_size, "epochs": config.epochs,
        "lr": config.lr, "weight_decay": config.weight_decay, "batch_size": config.batch_size,
        "balanced": config.balanced, "seed": config.seed, "device": str(device),
        "modes": list(modes_for(config.mode)), "val_fraction": config.val_fraction,
        "augment": config.augment, "select": config.select, "cv": config.cv,
        "preprocess": config.preprocess_params().to_json(),
        "pretrained": config.pretrained, "config": asdict(config),
        "split_counts": {s: int((df["split"] == s).sum()) for s in ("train", "test")},
        "train_counts": class_counts(train),
        "code_version": core.__version__, "git_commit": _git_commit(),
        "started": now_iso(), "finished": None, "status": "running", "cells": {},
        "rules": {"min_images": MIN_IMAGES, "min_per_class": MIN_PER_CLASS,
                  "balanced": "BCE pos_weight = n_benign / n_malignant"},
    }


def open_run(out_dir: Path, df: pd.DataFrame, source: Path | None, config: TrainConfig,
             device: torch.device) -> dict[str, Any]:
    """A fresh run.json, or the existing one when resuming a compatible run."""
    run_file = out_dir / runs.RUN_FILE
    fresh = _new_run_info(out_dir, df, source, config, device)
    if not run_file.is_file():
        return fresh  # --resume of a run that never wrote run.json simply starts it
    if not config.resume:
        raise TrainingError("the run folder already holds a run; pass --resume to continue it "
                            "or choose another --out", out_dir)
    info = runs.read_json(run_file)
    if info.get("validation_rule") != VALIDATION_RULE:
        raise TrainingError("cannot resume: this run's validation patients were carved under "
                            f"another rule ({info.get('validation_rule') or 'one carve per model'}"
                            "), so its warm-start model may have trained on its cells' "
                            "validation patients: train it afresh (another --out)", out_dir)
    if info.get("dataset_hash") != fresh["dataset_hash"]:
        raise TrainingError("cannot resume: the dataset differs from the one this run used "
                            "(its manifest, ROI shapes, mask files or labels changed), and its "
                            "cells would mix two routings: train it afresh (another --out)",
                            out_dir)
    old = TrainConfig(**{k: v for k, v in (info.get("config") or {}).items()
                         if k in TrainConfig.__dataclass_fields__})
    if old.pretrained_sha256 != config.pretrained_sha256:
        raise TrainingError(f"cannot resume with other pretrained weights: this run started "
                            f"{_weights_words(old)}, this start gives {_weights_words(config)}; "
                            "pass the run's own --pretrained file (or none) to resume it", out_dir)
    diff = [k for k, v in config.identity().items() if old.identity().get(k) != v]
    if diff:
        raise TrainingError(f"cannot resume with different options: {', '.join(diff)}", out_dir)
    if info.get("preprocess") != fresh["preprocess"]:
        version = (info.get("preprocess") or {}).get("version", "none")
        raise TrainingError(f"cannot resume: this run was made under another preprocessing "
                            f"spec (version {version}; this MammoRoute's: "
                            f"{fresh['preprocess']['version']}), so its cells would see two "
                            "renderings: train it afresh (another --out)", out_dir)
    info.update(status="running", finished=None, device=str(device), resumed=now_iso())
    info.setdefault(OPTIONS_KEY, fresh[OPTIONS_KEY])  # same hash: the data these options read
    info.pop("error", None)
    return info


def _weights_words(config: TrainConfig) -> str:
    """Where a run's cells start from, in words, for the resume refusal."""
    if not config.pretrained:
        return "from scratch (no --pretrained)"
    if config.pretrained_sha256 == "hub":
        return "from timm's hub weights"
    sha = config.pretrained_sha256
    return (f"from {Path(config.pretrained).name} "
            f"({'SHA-256 ' + sha[:12] + '…' if sha else 'SHA-256 not recorded'})")


def write_run(out_dir: Path, info: dict[str, Any]) -> None:
    """Replace run.json as a whole: the app reads it while training writes it."""
    atomic_write_json(out_dir / runs.RUN_FILE, info)
