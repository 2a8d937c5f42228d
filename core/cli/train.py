"""``python -m core train --dataset D --out checkpoints/NAME [options]``.

Trains the baseline and/or ROI-aware grid of a dataset into a run folder,
then predicts its test split and writes metrics.json.  Options left out take
:class:`core.train.TrainConfig`'s defaults (the paper's: AdamW, lr 1e-4, 100
epochs, 384 px).  torch is imported only when the command runs, so
``python -m core --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.cli.argtypes import NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT
from core.cli.scale_args import EXECUTOR_OPTIONS, add_executor_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train the baseline / ROI-aware grids of a dataset",
        description="Train one model per grid cell, predict the test split, evaluate. "
                    "Ctrl-C / SIGTERM stops after the current step; --resume continues.")
    add_arguments(p)
    add_executor_arguments(
        p, "local: this process trains every model in turn (default); ray: each model is a Ray "
           "task (warm start, then cells and CV folds, the ROI finder), on a local Ray or on "
           "--ray-address", per_task=True)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``train``; each dest is a :class:`core.train.TrainConfig` field."""
    p.add_argument("--dataset", required=True,
                   help="dataset folder or manifest CSV (VinDr, CDD-CESM, manifest layouts)")
    p.add_argument("--out", required=True, help="run folder, e.g. checkpoints/NAME")
    p.add_argument("--arch", help="swin, convnextv2 (paper), swin_micro, convnextv2_atto "
                                  "or a timm name (default convnextv2)")
    p.add_argument("--img-size", type=POSITIVE_INT, help="square input side in px (default 384)")
    p.add_argument("--epochs", type=POSITIVE_INT, help="epochs per cell (default 100)")
    p.add_argument("--mode", choices=("baseline", "roi", "both"), help="grids (default both)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="default 16")
    p.add_argument("--lr", type=POSITIVE_FLOAT, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    p.add_argument("--val-fraction", type=float,
                   help="patient-grouped validation share of each cell (default 0.15)")
    p.add_argument("--balanced", action="store_true", default=None,
                   help="class-balanced loss (BCE pos_weight = benign / malignant)")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="turn off the light affine / intensity augmentation")
    p.add_argument("--select", choices=("val_loss", "val_auc"),
                   help="epoch selection on validation (default val_loss)")
    p.add_argument("--cv", type=NON_NEGATIVE_INT, help="K-fold patient-grouped CV first (K ≥ 2)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue an interrupted run in --out")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--split-seed", type=int,
                   help="seed of the patient-grouped train/test split drawn for a dataset that "
                        "ships none (CDD-CESM; default 0)")
    p.add_argument("--cdd-type", type=str.upper, choices=("DM", "CESM"),
                   help="CDD-CESM images: DM = low energy (the paper's, default), "
                        "CESM = subtracted")
    p.add_argument("--pretrained", help="backbone weights: a local .safetensors file, or 'hub' "
                                        "for timm's (needs a network)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--workers", type=NON_NEGATIVE_INT, help="preprocessing processes (0 = all cores)")
    p.add_argument("--clahe-clip", type=float,
                   help="CLAHE clip limit (default 2.0, the paper's CLAHE; 0 = off)")
    p.add_argument("--clahe-tiles", type=int, help="CLAHE tiles per side (default 8)")
    p.add_argument("--warm-start", type=NON_NEGATIVE_INT, metavar="EPOCHS",
                   help="train one model on every training image for EPOCHS first and start "
                        "each cell from it (for small datasets; default 0 = off)")
    p.add_argument("--no-crop", dest="crop", action="store_false", default=None,
                   help="feed the whole frame instead of the breast crop (for comparison)")
    p.add_argument("--fit", choices=("stretch", "pad"),
                   help="breast crop to the square input: stretch (default) or pad (aspect kept)")
    p.add_argument("--roi-model", action="store_true", default=None,
                   help="also train the ROI finder that routes views without a mask")
    p.add_argument("--roi-size", type=POSITIVE_INT, help="ROI finder input side, a multiple of 16 "
                                                      "(default 96)")
    p.add_argument("--roi-epochs", type=POSITIVE_INT, help="ROI finder epochs (default 20)")
    p.add_argument("--synthetic", action="store_true", default=None,
                   help="mark the run as synthetic even without a phantom.json marker")


def option_actions() -> dict[str, argparse.Action]:
    """The training options by TrainConfig field name (everything but --dataset / --out).

    The one place that knows each option's flag, so the command the app builds
    (:func:`command_args`) is the command this parser reads.
    """
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return {a.dest: a for a in parser._actions if a.dest not in ("dataset", "out")}


def command_args(dataset: str | Path, out: str | Path, options: Mapping[str, Any]) -> list[str]:
    """``train`` arguments that hand ``options`` (TrainConfig field names) to :func:`run`.

    ``None`` leaves an option to its default; a switch appears when it is on
    (``--no-augment`` / ``--no-crop`` when off).  An unknown name is a
    programming error and raises ``KeyError``.
    """
    actions = option_actions()
    args = ["train", "--dataset", str(dataset), "--out", str(out)]
    for name, value in options.items():
        action = actions[name]
        flag = action.option_strings[0]
        if value is None:
            continue
        if action.nargs == 0:  # store_true / store_false: const is the value the flag sets
            args += [flag] if bool(value) == action.const else []
        else:
            args += [flag, str(value)]
    return args


def _executor(args: argparse.Namespace) -> Any:
    """The run's executor; Ray's is checked (installed, address answering) before the run
    folder is touched, so a typo in the address leaves no failed run behind."""
    from core.train.grid import train_serially

    if args.executor != "ray":
        given = [o for o in EXECUTOR_OPTIONS[1:] if getattr(args, o, None) is not None]
        if given:
            from core.errors import TrainingError

            raise TrainingError(f"--{given[0].replace('_', '-')} needs --executor ray")
        return train_serially
    from core.scale.session import import_ray, probe
    from core.scale.train import RayOptions, ray_executor

    import_ray()
    if args.ray_address:
        probe(args.ray_address)
    return ray_executor(RayOptions(args.ray_address, args.gpus_per_cell, args.cpus_per_cell))


def run(args: argparse.Namespace) -> int:
    from core.train import TrainConfig, train_grid

    given = {k: getattr(args, k) for k in option_actions() if getattr(args, k) is not None}
    config = TrainConfig(**given)
    summary = train_grid(args.dataset, args.out, config, executor=_executor(args))
    cells = summary.info.get("cells", {})
    done = sum(1 for c in cells.values() if c.get("status") == "done")
    skipped = sum(1 for c in cells.values() if c.get("status") == "skipped")
    print(f"run {summary.path}: {summary.status}; {done} cell(s) trained, {skipped} skipped; "
          f"{summary.info.get('evaluation', '')}", file=sys.stdout)
    return 0
