"""The per-image finder table (``roi_proposals.csv``) that evaluation reads.

Evaluation reads tables, never models, so the grid runner writes
the finder's answer for every test image next to the annotation it is judged
against: presence probability and call, the proposed boxes and their scores,
and the annotated ROIs as boxes, all in the image's own pixels.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.datasets.manifest import label_codes
from core.evaluate.roifinder import PROPOSALS_FILE
from core.pixels.cache import load_preprocessed_with_box
from core.pixels.crop import CropBox
from core.roifinder.geometry import full_shape, truth_boxes
from core.roifinder.infer import RoiFinder

PROPOSAL_COLUMNS: tuple[str, ...] = (
    "image_path", "patient_id", "study_id", "view", "label", "roi", "roi_probability",
    "roi_present", "threshold", "boxes", "scores", "truth_boxes", "height", "width",
)
CHUNK = 64


def propose_manifest(finder: RoiFinder, df: pd.DataFrame) -> pd.DataFrame:
    """One row per manifest row: the finder's answer and the annotation (JSON lists)."""
    records = proposal_records(df)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), CHUNK):
        chunk = records[start:start + CHUNK]
        loaded = [load_preprocessed_with_box(r["image_path"], finder.params) for r in chunk]
        rows.extend(proposal_rows(finder, chunk, loaded))
    return proposal_table(rows)


def proposal_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The manifest's rows as :func:`proposal_rows` takes them (labels coded 0 / 1)."""
    return df.assign(label=label_codes(df["label"])).to_dict("records")


def proposal_rows(finder: RoiFinder, records: list[dict[str, Any]],
                  loaded: list[tuple[np.ndarray, CropBox]]) -> list[dict[str, Any]]:
    """The table's rows for :func:`proposal_records` ``records`` whose finder inputs (image, crop box) are
    ``loaded``: one batch of the finder, wherever the images were preprocessed."""
    shapes = [full_shape(r) for r in records]
    props = finder.propose_inputs(np.stack([im for im, _ in loaded]),
                                  [box for _, box in loaded], shapes)
    rows = []
    for r, prop, (h, w) in zip(records, props, shapes):
        view = r.get("view_name") or f"{r['laterality']}{r['view']}"
        rows.append({
            "image_path": r["image_path"], "patient_id": r["patient_id"],
            "study_id": r["study_id"], "view": view,
            "label": int(r["label"]), "roi": bool(r["roi"]),
            "roi_probability": round(prop.probability, 6), "roi_present": bool(prop.present),
            "threshold": prop.threshold, "boxes": json.dumps(prop.boxes),
            "scores": json.dumps(prop.scores), "truth_boxes": json.dumps(truth_boxes(r)),
            "height": h, "width": w,
        })
    return rows


def proposal_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The finder table of :func:`proposal_rows`' rows, in the order given."""
    return pd.DataFrame(rows, columns=list(PROPOSAL_COLUMNS))


def write_proposals(folder: Path, predictions: pd.DataFrame) -> None:
    """Write the finder table :func:`core.predict.predict_manifest` attached to its
    predictions (``attrs["roi_proposals"]``) into ``folder``, when the run has a finder."""
    from core.runfolder.atomic import atomic_write_bytes

    table = predictions.attrs.get("roi_proposals")
    if table is not None:
        atomic_write_bytes(Path(folder) / PROPOSALS_FILE, table.to_csv(index=False).encode())
