"""``python -m core report RUN IMAGE... [--mask IMAGE=MASK] --pdf OUT.pdf [--threshold tuned|paper]``,
or ``python -m core report RUN --dicomweb URL --study UID --pdf OUT.pdf``.

Predicts one study exactly as ``python -m core predict`` does (the same
options, read by :func:`core.cli.predict.add_study_arguments`, so a new way of
naming a study there serves both commands) and writes the one-study PDF report
of :mod:`core.review.pdf`.  A report is all or nothing: a missing or unreadable
image, mask or run is one ``error:`` line naming the file, exit code 2, and no
PDF is written (the write is atomic, so no half-written file either).
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.cli.predict import (
    CAM_OPACITY,
    add_study_arguments,
    image_pairs,
    predict_from_args,
    study_files,
)
from core.errors import ImageReadError, MammoError, MaskError
from core.review.report import OPERATING_POINTS

PANEL_HEIGHT = 440  # pixels per view in the hanging picture, as case review's panels
CAM_SOURCES: tuple[str, ...] = ("roi_aware", "baseline", "off")
MARKER_DEPTH = 3
"""How many folders above an image may hold a dataset's synthetic marker: VinDr's
layout keeps images two folders below the dataset root (``images/<study>/``)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="a one-study PDF report (four views, Grad-CAM, calls, routing)",
        description="Predict one study with a run, as `predict` does, and write a PDF report: "
                    "the four views hung with Grad-CAM and ROIs, per-view and per-breast calls "
                    "at one operating point, routing in words, the run's identity.")
    add_study_arguments(p)
    p.add_argument("--pdf", type=Path, required=True, metavar="OUT.pdf",
                   help="where to write the report (replaced atomically)")
    p.add_argument("--threshold", choices=tuple(OPERATING_POINTS), default="tuned",
                   help="operating point: each model's validation-tuned threshold (default) "
                        "or p >= 0.5 as in the paper")
    p.add_argument("--cam-of", choices=CAM_SOURCES, default="roi_aware",
                   help="whose Grad-CAM the pictures show (default: the ROI-aware grid)")
    p.add_argument("--show-identifiers", action="store_true",
                   help="print the image file names in the report (off by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with study_files(args) as fetched:
        images_synthetic = None
        if fetched is not None:
            from core.phantom import synthetic_header

            images_synthetic = all(map(synthetic_header, fetched.headers))
        return write_pdf(args, images_synthetic)


def write_pdf(args: argparse.Namespace, images_synthetic: bool | None = None) -> int:
    """Predict the files ``args`` name and write the report; ``images_synthetic`` None:
    told by the images' folders (a PACS study's headers tell it instead)."""
    from core.datasets.roi import read_mask
    from core.phantom import synthetic_notice_text
    from core.review.board import empty_cams, hanging_image, result_pictures
    from core.review.export import export_record
    from core.review.overlay import cam_scale_bar
    from core.review.pdf import write_report
    from core.review.report import cell_meta, is_demonstration, view_call
    from core.runfolder.atomic import atomic_write_bytes

    check_files(args.images, image_pairs(args.mask, "--mask", args.images).values())
    cam = args.cam_of != "off"
    predictor, inputs, results = predict_from_args(args, cam=cam)
    failed = [r.error for r in results if r.error]
    if failed:  # a report that silently drops a view would misstate the study
        raise MammoError(f"no report: {failed[0]}")
    run_summary, point = predictor.run, args.threshold
    if images_synthetic is None:
        images_synthetic = all(map(synthetic_image, args.images))
    demonstration = is_demonstration(run_summary.synthetic, images_synthetic)
    metas: dict[str | None, Mapping[str, Any]] = {}

    def call_of(r, grid: str):
        cell = getattr(r, f"cell_{grid}")
        if cell not in metas:
            metas[cell] = cell_meta(run_summary, cell)
        return view_call(r, grid, metas[cell], point, demonstration)

    roi = {i.label: ("mask", read_mask(i.mask_path)) for i in inputs if i.mask_path}
    record = export_record(results, run_summary, point, call_of, roi, scrub=file_names(args.images))
    grid = "roi_aware" if args.cam_of == "off" else args.cam_of
    opacity = CAM_OPACITY if cam else 0.0
    hanging = hanging_image(result_pictures(results, grid, opacity, PANEL_HEIGHT), PANEL_HEIGHT)
    notice = synthetic_notice_text(run_summary.synthetic, images_synthetic)
    names = {r.view or f"image {n}": Path(r.image).name for n, r in enumerate(results, 1)}
    data = write_report(record, hanging, notice, cam_of=grid, opacity=opacity,
                        scale_bar=cam_scale_bar() if cam else None, identifiers=names,
                        show_identifiers=args.show_identifiers, empty_cam=empty_cams(results, grid))
    atomic_write_bytes(args.pdf, data)
    calls = "; ".join(f"{b['breast']} breast {b['call_roi_aware'] or 'no call'}"
                      for b in record["breasts"])
    print(f"wrote {args.pdf} ({len(data) / 1024:.0f} KiB): ROI-aware {calls}, "
          f"operating point {point}" + (" [SYNTHETIC]" if notice else ""))
    return 0


def check_files(images: Sequence[str], masks: Sequence[str] | Any) -> None:
    """Refuse, before any model loads, an image or mask that is not a readable file."""
    for paths, error in ((images, ImageReadError), (masks, MaskError)):
        for path in paths:
            if not Path(path).is_file():
                raise error("file not found", path)


def file_names(images: Sequence[str]) -> list[str]:
    """Every spelling of the images' names an error text might carry, longest first, so
    the record says "RCC" where a message named the file."""
    names = {n for i in images for n in (str(Path(i).resolve()), str(Path(i)), Path(i).name)}
    return sorted(names, key=len, reverse=True)


def synthetic_image(path: str | Path) -> bool:
    """Whether an image lies in a synthetic dataset: its folder or one of the
    :data:`MARKER_DEPTH` above it carries the phantom's marker."""
    from core.phantom import is_synthetic

    folder = Path(path).resolve().parent
    return any(is_synthetic(f) for f in [folder, *folder.parents][:MARKER_DEPTH])
