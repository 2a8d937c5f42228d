"""Training the finder: seeded epochs, selection and threshold on a patient-grouped carve.

* **Loss** = pixel BCE + soft Dice (over the images that have an ROI) on the
  map, + BCE of the presence head.  Lesions cover a few per cent of the input,
  so BCE alone would settle on an all-background map; Dice rewards overlap
  whatever the ROI's size.
* **Augmentation**: random horizontal and vertical flips, the same for image
  and mask (the finder must find ROIs in left and right breasts alike).
* **BatchNorm statistics** are recomputed on the unaugmented training images
  after every epoch, as the grids do (:func:`core.train.loop.recalibrate_batchnorm`):
  without it the validation loss of a short run from scratch jumped threefold
  from one epoch to the next.
* **Selection**: the epoch with the lowest validation loss.
* **Presence score**: the logit of the head or of the map's peak pixel,
  whichever has the higher ROC AUC on the validation carve at the selected
  epoch (:func:`choose_presence_source`; a tie goes to the map, the source
  fixed in advance: it learns from every pixel of every mask, the head from
  a few hundred image labels).  Both validation AUCs and the choice are
  stored (``presence_auc_val_by_source``, ``presence_source``,
  ``presence_source_rule``); the test split plays no part in it.  AUCs are
  taken on logits: the sigmoid of a map's peak is 1.0 in float32 on most
  images, and those ties cost AUC that the logits still have.
* **Calibration**: the chosen logit is Platt-scaled on the same carve
  (:func:`core.evaluate.calibration.fit_platt`, stored as
  ``presence_calibration``).  Raw, a score can saturate near 1 (a demo run's
  finder stored a Youden threshold of 0.999991, which no reader can use);
  calibrated, the served probability is what share of validation images
  with that score had an ROI.
* **Threshold**: on the calibrated probability, the cut of maximum Youden's J
  on the validation carve, placed halfway (in logit) between the lowest
  score it calls ROI and the highest below (:func:`gap_threshold`).  Without
  a usable carve: the last epoch, the map's peak (the a priori source), and
  calibration and threshold on the training images (``threshold_source``
  and ``presence_calibration.fitted_on`` say ``train``: optimistic).
* **Box IoU on validation** is measured as the test split's is
  (:func:`core.evaluate.roifinder.box_iou`): the proposals taken back to
  each image's own pixels against :func:`core.roifinder.geometry.truth_boxes`.
* **Resume**: a finished finder whose weights still hash as recorded is kept;
  an interrupted one starts again (it is minutes, not hours).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.errors import TrainingError
from core.roifinder.data import FinderData, build_data, carve
from core.roifinder.geometry import input_to_full
from core.roifinder.infer import (
    PRESENCE_SOURCES,
    predict_maps,
    presence_logits,
    probability_map,
)
from core.roifinder.model import ARCH, MIN_MULTIPLE, FinderNet, create_finder
from core.roifinder.store import CALIBRATION_KEY, ROI_DIR, RUN_KEY, finished, save_finder
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_json
from core.runfolder.splits import write_split

__all__ = ["RUN_KEY", "FinderConfig", "FinderInputs", "choose_presence_source", "finder_config",
           "finder_inputs", "finder_loss", "gap_threshold", "kept_entry", "skipped_entry",
           "train_finder", "validation_box_iou"]

Emit = Callable[..., None]


@dataclass
class FinderConfig:
    """The finder's options; ``size`` is its own input side (``--roi-size``).

    ``source_side`` is the run's rendering side: the finder reads the same
    rendering as the grids, so review renders each view once for both.
    """

    size: int = 96
    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    seed: int = 0
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    crop: bool = True
    fit: str = "stretch"
    source_side: int | None = None  # None: the spec's default for ``size``

    def check(self) -> None:
        if self.size < MIN_MULTIPLE or self.size % MIN_MULTIPLE:
            raise TrainingError(f"ROI finder size {self.size} is not a multiple of {MIN_MULTIPLE}")
        if self.epochs < 1 or self.batch_size < 2:
            raise TrainingError("ROI finder needs ≥ 1 epoch and a batch of ≥ 2")


def finder_config(config: Any) -> FinderConfig:
    """The finder's options from a run's :class:`~core.train.TrainConfig`: its own size and
    epochs, the run's seed, validation share and preprocessing (so the same crop and
    the same rendering)."""
    return FinderConfig(size=config.roi_size, epochs=config.roi_epochs, seed=config.seed,
                        val_fraction=config.val_fraction, clahe_clip=config.clahe_clip,
                        clahe_tiles=config.clahe_tiles, crop=config.crop, fit=config.fit,
                        source_side=config.preprocess_params().source_side)


def _params(config: FinderConfig):
    from core.pixels.spec import PreprocessParams

    return PreprocessParams(config.size, config.clahe_clip, config.clahe_tiles, config.crop,
                            config.fit, config.source_side)


def _flip(x: torch.Tensor, m: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random horizontal / vertical flips for each image and its mask."""
    for dim in (3, 2):
        pick = (torch.rand(x.shape[0], generator=gen) < 0.5).view(-1, 1, 1, 1)
        x, m = torch.where(pick, x.flip(dim), x), torch.where(pick, m.flip(dim), m)
    return x, m


def finder_loss(mask_logits: torch.Tensor, presence_logits: torch.Tensor, masks: torch.Tensor,
                present: torch.Tensor) -> torch.Tensor:
    """Pixel BCE + soft Dice over ROI images + presence BCE (see the module docstring)."""
    f = nn.functional
    loss = f.binary_cross_entropy_with_logits(mask_logits, masks)
    loss = loss + f.binary_cross_entropy_with_logits(presence_logits, present)
    pos = present > 0
    if pos.any():
        p = torch.sigmoid(mask_logits[pos]).flatten(1)
        t = masks[pos].flatten(1)
        dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
        loss = loss + (1 - dice).mean()
    return loss


def _epoch(model: FinderNet, opt: torch.optim.Optimizer, data: FinderData, config: FinderConfig,
           epoch: int, device: torch.device) -> float:
    from core.train.config import seeded_generator
    from core.train.data import shuffled_batches

    model.train()
    gen = seeded_generator(config.seed, "roi_model", epoch, "augment")
    total = seen = 0.0
    order = seeded_generator(config.seed, "roi_model", epoch, "shuffle")
    for idx in shuffled_batches(data.n, config.batch_size, order):
        x, m = _flip(data.images[idx].float().div(255.0), data.masks[idx].float(), gen)
        mask_logits, presence_logits = model(x.to(device))
        loss = finder_loss(mask_logits, presence_logits, m.to(device), data.present[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1.0)


@torch.no_grad()
def _val_loss(model: FinderNet, data: FinderData, device: torch.device) -> float:
    model.eval()
    total = 0.0
    for start in range(0, data.n, 64):
        sl = slice(start, start + 64)
        mask_logits, presence_logits = model(data.images[sl].float().div(255.0).to(device))
        total += float(finder_loss(mask_logits, presence_logits, data.masks[sl].float().to(device),
                                   data.present[sl].to(device))) * len(data.images[sl])
    return total / max(data.n, 1)


DEFAULT_PRESENCE_SOURCE = "map"  # the a priori source (see the module docstring)


def choose_presence_source(aucs: Mapping[str, float | None]) -> tuple[str, str]:
    """The presence source with the higher validation AUC, and the rule that chose it.

    Without a validation AUC (no carve, or one class in it) the choice falls
    back to :data:`DEFAULT_PRESENCE_SOURCE`, fixed before any data was seen.
    """
    scored = {s: float(a) for s, a in aucs.items() if a is not None and a == a}
    if not scored:
        return DEFAULT_PRESENCE_SOURCE, "no validation AUC: the map's peak, fixed in advance"
    order = sorted(scored, key=lambda s: s != DEFAULT_PRESENCE_SOURCE)  # ties: the default
    return max(order, key=scored.__getitem__), "higher validation ROC AUC (a tie: the map)"


CALIBRATION_METHOD = ("Platt scaling of the raw presence logit (Platt's smoothed targets): "
                      "p = sigmoid((logit - offset) / temperature)")
THRESHOLD_RULE = ("max Youden J on the calibrated probability, the cut placed halfway (in logit) "
                  "between the lowest score it calls ROI and the highest below; ROI present iff "
                  "p >= threshold")


def gap_threshold(y: np.ndarray, probs: np.ndarray) -> float:
    """The cut of maximum Youden's J on ``probs``, placed halfway (in logit) between the lowest
    probability it calls ROI and the highest below it: the same images called as at the
    Youden cut, without sitting on one image's score (which would call that image by a hair)."""
    from scipy.special import expit, logit

    from core.train.metrics import youden_threshold

    probs = np.asarray(probs, np.float64)
    cut = youden_threshold(y, probs)
    below = probs[probs < cut]
    if not below.size or cut >= 1.0:
        return float(cut)
    return float(expit((logit(cut) + logit(below.max())) / 2))


def validation_box_iou(maps: np.ndarray, data: FinderData, size: int) -> dict[str, Any]:
    """Best-IoU of each annotated ROI of ``data`` with the boxes proposed from ``maps``
    (logits), in
    each image's own pixels: the test split's measure on the validation carve."""
    from core.evaluate.roifinder import box_iou
    from core.roifinder.infer import map_boxes

    proposed = [input_to_full(map_boxes(probability_map(m))[0], crop, size, shape)
                for m, crop, shape in zip(maps, data.crops, data.shapes)]
    return box_iou(pd.DataFrame({"truth_boxes": data.truths, "boxes": proposed}))


@dataclass
class FinderInputs:
    """The finder's carve and its data, read from the files once (:func:`finder_inputs`)."""

    fit: pd.DataFrame
    val: pd.DataFrame
    data: FinderData
    vdata: FinderData


def finder_inputs(train_df: pd.DataFrame, config: FinderConfig) -> FinderInputs:
    """The patient-grouped carve of ``train_df`` and both sides' images, masks and boxes."""
    fit, val = carve(train_df, config.val_fraction, config.seed)
    params = _params(config)
    return FinderInputs(fit, val, build_data(fit, params), build_data(val, params))


def skipped_entry(train_df: pd.DataFrame, config: FinderConfig) -> dict[str, Any] | None:
    """run.json's ``skipped`` entry when ``train_df`` cannot train a finder, else None."""
    n_roi = int(train_df["roi"].astype(bool).sum())
    if n_roi < 2 or n_roi > len(train_df) - 2:
        return {"status": "skipped", "size": config.size,
                "reason": f"{n_roi} of {len(train_df)} training images have an ROI; the finder "
                          "needs at least 2 with and 2 without"}
    return None


def kept_entry(run_dir: Path, config: FinderConfig, expected_sha256: str | None
               ) -> dict[str, Any] | None:
    """A finished finder of this size whose weights still hash as recorded (resume), else None."""
    meta = finished(run_dir, expected_sha256)
    return _entry(meta) if meta is not None and meta.get("size") == config.size else None


def train_finder(train_df: pd.DataFrame, run_dir: str | Path, config: FinderConfig,
                 device: torch.device | str = "cpu", resume: bool = False,
                 expected_sha256: str | None = None, emit: Emit | None = None,
                 inputs: FinderInputs | None = None) -> dict[str, Any]:
    """Train the finder on ``train_df`` (the training split) into ``run_dir/roi_model``.

    Returns run.json's ``roi_model`` entry: ``done`` with its SHA-256, or
    ``skipped`` with a reason (no image with an ROI, or none without).
    ``inputs`` (:func:`finder_inputs`) spares reading the files again.
    """
    config.check()
    run_dir, device = Path(run_dir), torch.device(device)
    kept = kept_entry(run_dir, config, expected_sha256) if resume else None
    if kept is not None:
        return kept
    skipped = skipped_entry(train_df, config)
    if skipped is not None:
        return skipped
    t0 = time.perf_counter()
    inputs = inputs or finder_inputs(train_df, config)
    fit, val, data, vdata = inputs.fit, inputs.val, inputs.data, inputs.vdata
    from core.train.config import derive_seed, seed_everything

    seed_everything(derive_seed(config.seed, "roi_model", "init"))
    model = create_finder(config.size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    from core.train.data import CellData
    from core.train.loop import recalibrate_batchnorm

    staged = CellData(data.images, data.present.numpy(), device)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history = []
    for epoch in range(1, config.epochs + 1):
        e0 = time.perf_counter()
        loss = _epoch(model, opt, data, config, epoch, device)
        recalibrate_batchnorm(model, staged, device)
        v = _val_loss(model, vdata, device) if vdata.n else None
        history.append({"epoch": epoch, "train_loss": round(loss, 5),
                        "val_loss": None if v is None else round(v, 5),
                        "seconds": round(time.perf_counter() - e0, 2)})
        score = v if v is not None else -epoch
        if best is None or score < best[0]:
            best = (score, epoch, {k: t.detach().clone() for k, t in model.state_dict().items()})
        if emit is not None:
            emit("roi_epoch", cell=ROI_DIR, epoch=epoch, epochs=config.epochs, loss=round(loss, 5),
                 val_loss=history[-1]["val_loss"])
    assert best is not None
    model.load_state_dict(best[2])
    meta = _finish(model, data, vdata, config, device, best[1], history,
                   {"fit": _counts(fit), "val": _counts(val)})
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    folder = run_dir / ROI_DIR
    folder.mkdir(parents=True, exist_ok=True)
    meta["sha256"] = save_finder(model, folder)
    atomic_write_json(folder / runs.META_FILE, meta)
    write_split(folder, fit, val)
    return _entry(meta)


def _counts(df: pd.DataFrame) -> dict[str, int]:
    roi = df["roi"].astype(bool)
    return {"roi": int(roi.sum()), "noroi": int((~roi).sum())}


def _finish(model: FinderNet, data: FinderData, vdata: FinderData, config: FinderConfig,
            device: torch.device, best_epoch: int,
            history: list[dict[str, Any]], counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Presence source, threshold and validation metrics of the selected epoch, all
    decided on the validation carve (``vdata``) when there is one."""
    from core.evaluate.calibration import fit_platt
    from core.train.metrics import auc_or_none, operating_point

    on_val = vdata.n > 0
    chosen = vdata if on_val else data
    heads, maps = predict_maps(model, chosen.images, device)
    y = chosen.present.numpy()
    aucs: dict[str, float | None] = {}
    if on_val:
        for name in PRESENCE_SOURCES:
            aucs[name] = auc_or_none(y, presence_logits(heads, maps, name))
    source, rule = choose_presence_source(aucs)
    logits = presence_logits(heads, maps, source)
    calibration = fit_platt(logits, y)
    probs = calibration.probability(logits)
    threshold = gap_threshold(y, probs)
    return {
        "arch": ARCH, "size": config.size, "threshold": threshold,
        "threshold_source": "val" if on_val else "train",
        "threshold_rule": THRESHOLD_RULE,
        CALIBRATION_KEY: {"temperature": calibration.temperature, "offset": calibration.offset,
                          "method": CALIBRATION_METHOD,
                          "fitted_on": "val" if on_val else "train"},
        "presence_source": source, "presence_source_rule": rule,
        "presence_auc_val": aucs.get(source), "presence_auc_val_by_source": aucs,
        **operating_point(y, probs, threshold),
        "box_iou_val": validation_box_iou(maps, vdata, config.size)["value"] if on_val
        else None,
        "n_fit": data.n, "n_val": vdata.n, "counts": counts, "best_epoch": best_epoch,
        "selection": "val_loss" if on_val else "last_epoch",
        "config": asdict(config),
        "preprocess": _params(config).to_json(),
        "history": history,
    }


def _entry(meta: dict[str, Any]) -> dict[str, Any]:
    """run.json's ``roi_model`` entry from a finder's meta.json."""
    return {"status": "done", "sha256": meta["sha256"], "arch": meta["arch"], "size": meta["size"],
            "threshold": meta["threshold"], "presence_source": meta["presence_source"],
            "presence_auc_val": meta.get("presence_auc_val"), "best_epoch": meta["best_epoch"],
            "seconds": meta.get("seconds", 0.0)}
