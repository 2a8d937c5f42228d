"""``python -m core predict checkpoints/NAME IMAGE... [--mask IMAGE=MASK] [--view IMAGE=RCC]``.

Routes every image to its cell in both grids of a run and prints, per image,
the view, whether it had an ROI, the model that served it (and whether that
was a fallback) and P(malignant).  ``--cam OUTDIR`` writes Grad-CAM overlays.
A bad image is reported on its own line; the command fails (one ``error:``
line) only when no image at all could be predicted.

``--manifest CSV --out DIR`` predicts every row of a manifest instead and writes
the long table evaluation reads (``DIR/predictions.csv``, with the ROI finder's
``roi_proposals.csv`` when the run has one), in this process or, with
``--executor ray``, on Ray Data workers (:mod:`core.scale.batch`).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.scale_args import add_batch_executor_arguments
from core.errors import MammoError
from core.review.readout import shown_call
from core.runfolder.atomic import atomic_write_png

if TYPE_CHECKING:
    from core.predict import Predictor, ViewInput, ViewResult

RESULT_KEYS: tuple[str, ...] = (
    "image", "view", "roi", "cell", "fallback", "p_malignant_roi_aware", "p_malignant_baseline",
    "threshold_roi_aware", "threshold_baseline", "cell_baseline", "view_source",
    "fallback_reason", "roi_source", "roi_probability", "roi_boxes", "warnings", "error",
)
CAM_OPACITY = 0.5  # the app's default blend


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="routed prediction (both grids) for one study's images",
        description="Predict P(malignant) for images with a trained run; each image goes to "
                    "the model of its (ROI?, view) cell.")
    add_study_arguments(p, images="*")
    p.add_argument("--cam", type=Path, default=None, metavar="OUTDIR",
                   help="write Grad-CAM overlay PNGs (one per image per grid) into OUTDIR")
    p.add_argument("--json", action="store_true", help="print the results as a JSON list")
    p.add_argument("--manifest", type=Path, default=None, metavar="CSV",
                   help="predict every row of this manifest CSV instead of a study's images "
                        "(needs --out)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="with --manifest: folder for predictions.csv (and roi_proposals.csv)")
    add_batch_executor_arguments(p)
    p.set_defaults(func=run)


def add_study_arguments(p: argparse.ArgumentParser, images: str = "+") -> None:
    """The options that say which study a run reads: the run, the images, masks, views,
    proposals and device.  Every command that predicts a study takes exactly these, so
    ``report`` reads a study the way ``predict`` does.  ``images``: their ``nargs``
    (``predict`` takes none with ``--manifest``)."""
    p.add_argument("run_dir", help="run folder, e.g. checkpoints/NAME (or just NAME)")
    p.add_argument("images", nargs=images, help="DICOM or image files (PNG, JPEG, PGM, TIFF)")
    p.add_argument("--mask", action="append", default=[], metavar="IMAGE=MASK",
                   help="ROI mask file for IMAGE (same size as the image); repeatable")
    p.add_argument("--view", action="append", default=[], metavar="IMAGE=VIEW",
                   help="force the view of IMAGE (RCC, LCC, RMLO, LMLO); repeatable")
    p.add_argument("--no-propose", dest="propose", action="store_false",
                   help="do not let the run's ROI finder route views without a mask "
                        "(they route as without ROI)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the models run (default: CUDA when present)")


def predict_from_args(args: argparse.Namespace, cam: bool
                      ) -> tuple[Predictor, list[ViewInput], list[ViewResult]]:
    """Load the run and predict the study that :func:`add_study_arguments` parsed; the
    inputs come back beside the results (their masks, for the audit record).

    Fails (one line) only when no image at all could be predicted; a single bad
    image is that image's ``error``.
    """
    from core.pixels.views import normalise_view
    from core.predict import Predictor, ViewInput

    masks = image_pairs(args.mask, "--mask", args.images)
    views = {k: normalise_view(v) for k, v in image_pairs(args.view, "--view", args.images).items()}
    predictor = Predictor(run_path(args.run_dir), device=args.device)
    inputs = [ViewInput(name=image, path=image, view=views.get(image), mask_path=masks.get(image))
              for image in args.images]
    results = predictor.predict_study(inputs, cam=cam, propose=args.propose)
    if all(r.error for r in results):
        raise MammoError("nothing could be predicted: "
                         + "; ".join(str(r.error) for r in results))
    return predictor, inputs, results


def run_path(text: str) -> Path:
    """A run folder as given, else a run of that name under the checkpoints root."""
    from core.runfolder.layout import checkpoints_root

    path = Path(text)
    if path.is_dir() or path.is_absolute() or len(path.parts) > 1:
        return path
    return checkpoints_root() / text


def image_pairs(items: list[str], option: str, images: list[str]) -> dict[str, str]:
    """``IMAGE=VALUE`` options keyed by the image argument they name.

    IMAGE may be the argument as typed, the same file by another path, or a
    unique file name; naming no listed image is a usage error.
    """
    out: dict[str, str] = {}
    for item in items:
        splits = [i for i, ch in enumerate(item) if ch == "="]
        if not splits:
            raise MammoError(f"{option} {item!r}: expected IMAGE=VALUE")
        # an "=" may sit inside a file name: take the first split whose left side is an image
        at = next((i for i in splits if item[:i] in images), splits[0])
        key, value = item[:at], item[at + 1:]
        if not key or not value:
            raise MammoError(f"{option} {item!r}: expected IMAGE=VALUE")
        out[_match_image(key, images, option)] = value
    return out


def _match_image(key: str, images: list[str], option: str) -> str:
    if key in images:
        return key
    same = [i for i in images if Path(i).resolve() == Path(key).resolve()]
    if not same:
        same = [i for i in images if Path(i).name == Path(key).name]
    if len(same) != 1:
        raise MammoError(f"{option}: {key!r} names {'no' if not same else 'more than one'} "
                         "of the images given")
    return same[0]


def run(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        return run_manifest(args)
    if not args.images:
        raise MammoError("give the study's images (IMAGE ...), or --manifest CSV --out DIR")
    if args.out is not None or args.executor != "local" or args.ray_address:
        raise MammoError("--out, --executor and --ray-address go with --manifest")
    _, _, results = predict_from_args(args, cam=args.cam is not None)
    if args.cam is not None:
        _write_cams(args.cam, results)
    if args.json:
        rows = [{k: r.summary().get(k) for k in RESULT_KEYS} for r in results]
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(results))
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    """Predict every row of ``--manifest`` into ``--out/predictions.csv``."""
    from core.datasets import load_dataset
    from core.predict import Predictor
    from core.predict.manifest import write_predictions
    from core.scale.batch import manifest_executor

    if args.images or args.mask or args.view or args.cam is not None:
        raise MammoError("--manifest predicts the manifest's own images: give no IMAGE, "
                         "--mask, --view or --cam with it")
    if args.out is None:
        raise MammoError("--manifest needs --out DIR (the folder predictions.csv goes to)")
    predictor = Predictor(run_path(args.run_dir), device=args.device)  # a bad run fails first
    df = load_dataset(args.manifest)
    with manifest_executor(args.executor, args.ray_address) as predict:
        predictions = predict(predictor, df)
    write_predictions(args.out, predictions)
    unpredicted = int(predictions.attrs.get("unpredicted", 0))
    print(f"{len(df)} image(s) of {args.manifest} predicted ({args.executor}): "
          f"{len(predictions)} row(s) in {args.out / 'predictions.csv'}"
          + (f"; {unpredicted} (image, grid) pair(s) no model serves" if unpredicted else ""))
    return 0


def _write_cams(outdir: Path, results: list) -> None:
    """One overlay per image per grid, named ``<image stem>_<grid>.png``."""
    import cv2

    from core.review.overlay import cam_overlay, draw_outline

    outdir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for r in results:
        if r.error or r.preprocessed is None:
            continue
        stem = _unique(re.sub(r"[^0-9A-Za-z_.-]+", "_", Path(r.image).stem) or "image", used)
        for grid, cam in (("roi_aware", r.cam_roi_aware), ("baseline", r.cam_baseline)):
            if cam is None:
                continue
            rgb = draw_outline(cam_overlay(r.preprocessed, cam, CAM_OPACITY), r.mask)
            target = outdir / f"{stem}_{grid}.png"
            atomic_write_png(target, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _unique(stem: str, used: set[str]) -> str:
    name, n = stem, 2
    while name in used:
        name, n = f"{stem}-{n}", n + 1
    used.add(name)
    return name


def _prob(p: float | None, threshold: float | None) -> str:
    """``72.4 % (malignant, ≥ 72.0 %)``: rounded so the numbers never contradict the call."""
    if p is None:
        return "–"
    shown = shown_call(p, threshold)
    return f"{shown.probability} ({shown.word}, {shown.relation} {shown.threshold})"


def _roi_text(r) -> str:
    """``yes`` / ``no``, and where the answer came from when the ROI finder gave it."""
    text = "yes" if r.roi else "no"
    if getattr(r, "roi_source", None) == "proposed":
        text += f" (proposed, p {r.roi_probability:.2f})"
    return text


def format_table(results: list) -> str:
    """A readable table, then the notes (fallbacks, warnings, errors) per image."""
    header = ("image", "view", "ROI", "ROI-aware cell", "P(mal) ROI-aware",
              "baseline cell", "P(mal) baseline")
    rows = [header]
    for r in results:
        cell = (r.cell_roi_aware or "–") + (" (fallback)" if r.fallback else "")
        rows.append((Path(r.image).name, r.view or "?", _roi_text(r), cell,
                     _prob(r.p_malignant_roi_aware, r.threshold_roi_aware),
                     r.cell_baseline or "–",
                     _prob(r.p_malignant_baseline, r.threshold_baseline)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        name = Path(r.image).name
        if r.error:
            lines.append(f"{name}: error: {r.error}")
        if r.view_source == "image":
            lines.append(f"{name}: view {r.view} read from the image where the DICOM tags and "
                         f"the file name are silent; if wrong, give --view {name}=VIEW")
        lines.extend(f"{name}: {w}" for w in r.warnings if not r.error or w not in r.error)
    return "\n".join(lines)
