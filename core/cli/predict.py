"""``python -m core predict checkpoints/NAME IMAGE... [--mask IMAGE=MASK] [--view IMAGE=RCC]``,
or ``python -m core predict NAME --dicomweb URL --study UID [--store]``.

Routes every image to its cell in both grids of a run and prints, per image,
the view, whether it had an ROI, the model that served it (and whether that
was a fallback) and P(malignant).  ``--cam OUTDIR`` writes Grad-CAM overlays.
A bad image is reported on its own line; the command fails (one ``error:``
line) only when no image at all could be predicted.

``--manifest CSV --out DIR`` predicts every row of a manifest instead and writes
the long table evaluation reads (``DIR/predictions.csv``, with the ROI finder's
``roi_proposals.csv`` when the run has one), in this process or, with
``--executor ray``, on Ray Data workers (:mod:`core.scale.batch`).

A study from a PACS is retrieved into a temporary folder (:func:`study_files`)
and then predicted exactly as files are; ``--store`` puts the results back into
it as DICOM (SR, SEG, SC: :mod:`core.dicomout.store`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.scale_args import add_batch_executor_arguments
from core.errors import MammoError
from core.review.readout import shown_call
from core.runfolder.atomic import atomic_write_png

if TYPE_CHECKING:
    from core.dicomout.store import StoreReport
    from core.pacs.fetch import FetchedStudy
    from core.predict import Predictor, ViewInput, ViewResult

RESULT_KEYS: tuple[str, ...] = (
    "image", "view", "roi", "cell", "fallback", "p_malignant_roi_aware", "p_malignant_baseline",
    "threshold_roi_aware", "threshold_baseline", "cell_baseline", "view_source",
    "fallback_reason", "roi_source", "roi_probability", "roi_boxes", "warnings", "error",
)
CAM_OPACITY = 0.5  # the app's default blend
IMAGE_SUFFIX = re.compile(r"\.(dcm|dicom|dic|png|jpe?g|pgm|tiff?|bmp)$", re.IGNORECASE)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="routed prediction (both grids) for one study's images",
        description="Predict P(malignant) for images with a trained run; each image goes to "
                    "the model of its (ROI?, view) cell.")
    add_study_arguments(p)
    p.add_argument("--cam", type=Path, default=None, metavar="OUTDIR",
                   help="write Grad-CAM overlay PNGs (one per image per grid) into OUTDIR")
    p.add_argument("--json", action="store_true", help="print the results as a JSON list")
    p.add_argument("--manifest", type=Path, default=None, metavar="CSV",
                   help="predict every row of this manifest CSV instead of a study's images "
                        "(needs --out)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="with --manifest: folder for predictions.csv (and roi_proposals.csv)")
    add_batch_executor_arguments(p)
    p.add_argument("--store", action="store_true",
                   help="with --dicomweb: store the results back into the study as DICOM "
                        "(an SR, a SEG of the routing ROIs, Grad-CAM Secondary Captures)")
    p.set_defaults(func=run)


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """The options that say which study a run reads: the run, the images, masks, views,
    proposals and device.  Every command that predicts a study takes exactly these, so
    ``report`` reads a study the way ``predict`` does.  Images are optional here:
    ``--dicomweb`` and ``--manifest`` name a study without them."""
    p.add_argument("run_dir", help="run folder, e.g. checkpoints/NAME (or just NAME)")
    p.add_argument("images", nargs="*", help="DICOM or image files (PNG, JPEG, PGM, TIFF)")
    p.add_argument("--dicomweb", metavar="URL", default=None,
                   help="read the study from this DICOMweb PACS instead of files (with --study; "
                        "default $MAMMOROUTE_DICOMWEB_URL)")
    p.add_argument("--study", metavar="UID", default=None,
                   help="Study Instance UID of the study to read from --dicomweb")
    p.add_argument("--mask", action="append", default=[], metavar="IMAGE=MASK",
                   help="ROI mask file for IMAGE (same size as the image; IMAGE of a PACS "
                        "study: its SOP Instance UID or view); repeatable")
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
    names = getattr(args, "image_names", None) or {}
    inputs = [ViewInput(name=names.get(image, image), path=image, view=views.get(image),
                        mask_path=masks.get(image)) for image in args.images]
    results = predictor.predict_study(inputs, cam=cam, propose=args.propose)
    if all(r.error for r in results):
        raise MammoError("nothing could be predicted: "
                         + "; ".join(str(r.error) for r in results))
    return predictor, inputs, results


@contextmanager
def study_files(args: argparse.Namespace) -> Iterator[FetchedStudy | None]:
    """The study the options name, as files: the images given, or (``--dicomweb``,
    ``--study``) the PACS study's mammograms retrieved into a temporary folder that
    lasts as long as the ``with``.  Then ``args.images`` are its files, each named
    by its SOP Instance UID, and ``IMAGE=`` options may name an image by its SOP
    Instance UID or view.  Every command that reads a study goes through here."""
    from core.pacs import ENV_URL

    if args.study and not args.dicomweb:
        args.dicomweb = os.environ.get(ENV_URL) or None
    if bool(args.dicomweb) != bool(args.study):
        raise MammoError(f"--study needs --dicomweb URL (or {ENV_URL}), and --dicomweb needs --study")
    if args.dicomweb and args.images:
        raise MammoError("give either image files or --dicomweb with --study, not both")
    if not args.dicomweb:
        if not args.images:
            raise MammoError("no images: give image files, or --dicomweb URL --study UID")
        yield None
        return
    from core.pacs import PacsClient
    from core.pacs.fetch import fetch_study

    with tempfile.TemporaryDirectory(prefix="mammoroute-pacs-") as tmp:
        fetched = fetch_study(PacsClient(args.dicomweb), args.study, tmp)
        aliases = fetched.aliases()
        args.images = [str(p) for p in fetched.files]
        args.image_names = {str(p): ref.sop_uid for p, ref in zip(fetched.files, fetched.refs)}
        args.mask = [_aliased(item, aliases) for item in args.mask]
        args.view = [_aliased(item, aliases) for item in args.view]
        for note in fetched.notes:
            print(f"{fetched.url}: study {fetched.study_uid}: {note}", file=sys.stderr)
        yield fetched


def _aliased(item: str, aliases: dict[str, str]) -> str:
    """``UID=VALUE`` or ``RCC=VALUE`` with the key turned into the retrieved file's path."""
    for key, path in aliases.items():
        if item.startswith(key + "="):
            return path + item[len(key):]
    return item


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
    if args.out is not None or args.executor != "local" or args.ray_address:
        raise MammoError("--out, --executor and --ray-address go with --manifest")
    if args.store and not args.dicomweb:
        raise MammoError("--store needs a study from a PACS (--dicomweb URL --study UID)")
    with study_files(args) as fetched:
        predictor, inputs, results = predict_from_args(args, cam=args.cam is not None or args.store)
        if args.cam is not None:
            _write_cams(args.cam, results)
        if args.json:
            rows = [{k: r.summary().get(k) for k in RESULT_KEYS} for r in results]
            print(json.dumps(rows, indent=2))
        else:
            print(format_table(results))
        if not args.store or fetched is None:
            return 0
        report = store_study(fetched, predictor, inputs, results)
    for line in report.lines():
        print(f"{report.url}: {line}", file=sys.stderr if args.json else sys.stdout)
    return 1 if report.refused else 0


def store_study(fetched: FetchedStudy, predictor: Predictor, inputs: list[ViewInput],
                results: list[ViewResult]) -> StoreReport:
    """The results back into their PACS study, at the tuned operating point as the table
    states them: an SR, a SEG of the ROIs that routed views, the ROI-aware grid's
    Grad-CAM over each whole image as a Secondary Capture."""
    from core.datasets.roi import read_mask
    from core.dicomout.from_predict import cam_overlays, study_result
    from core.dicomout.store import store_results
    from core.pacs import PacsClient
    from core.phantom import synthetic_header
    from core.pixels.preprocess import render_source
    from core.review.report import StudyCalls, is_demonstration

    run_summary = predictor.run
    images_synthetic = all(map(synthetic_header, fetched.headers))
    calls = StudyCalls(run_summary, "tuned", is_demonstration(run_summary.synthetic, images_synthetic))
    header = {i.label: h for i, h in zip(inputs, fetched.headers)}
    rois = {i.label: ("mask", read_mask(i.mask_path)) for i in inputs if i.mask_path}
    path = {i.label: i.path for i in inputs}
    overlays = cam_overlays(results, header,
                            lambda key: render_source(path[key], predictor.params).pixels,
                            rois, "roi_aware", CAM_OPACITY)
    result = study_result(results, header, run_summary, calls, rois=rois, overlays=overlays,
                          synthetic=run_summary.synthetic or images_synthetic)
    return store_results(PacsClient(fetched.url), fetched.headers, result)


def run_manifest(args: argparse.Namespace) -> int:
    """Predict every row of ``--manifest`` into ``--out/predictions.csv``."""
    from core.datasets import load_dataset
    from core.predict import Predictor
    from core.predict.manifest import write_predictions
    from core.scale.batch import manifest_executor

    if args.images or args.mask or args.view or args.cam is not None or args.dicomweb \
            or args.study or args.store:
        raise MammoError("--manifest predicts the manifest's own images: give no IMAGE, "
                         "--mask, --view, --cam, --dicomweb, --study or --store with it")
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
        name = re.sub(IMAGE_SUFFIX, "", Path(r.image).name)  # not Path.stem: a SOP UID has dots
        stem = _unique(re.sub(r"[^0-9A-Za-z_.-]+", "_", name) or "image", used)
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
