"""Scoring the ROI finder from its per-image table (``roi_proposals.csv``), and McNemar of
the finder-routed grid.

Pure functions of tables, like the rest of evaluation.  Definitions:

* **Presence**: the finder's call (``roi_present``) against the annotation
  (``roi``): AUC of ``roi_probability``, sensitivity and specificity at the
  stored threshold, with patient-level bootstrap 95 % CIs.
* **box_iou**: for each annotated ROI, its best IoU with any box the finder
  proposed on that image (0 when it proposed none), averaged over ROIs.
* **FROC**: every proposed box is a candidate scored by its peak map
  probability; a candidate *hits* an annotated ROI when their IoU is at least
  :data:`HIT_IOU` (0.3, a localisation criterion lenient enough for boxes
  around irregular lesions).  At each score cut, sensitivity = share of
  annotated ROIs hit by a candidate above the cut; false positives = above-cut
  candidates hitting no ROI, per test image.  The reported points are the
  highest sensitivity reachable at ≤ 0.5 and ≤ 1 false positive per image.
* **roi_presence_proposed**: the ``roi_presence_only`` reference row with the
  finder's call in place of the annotation (malignant iff an ROI is proposed).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import CheckpointError
from core.evaluate.bootstrap import auc_samples, metric_block, patient_bootstrap_weights
from core.evaluate.constants import DEFAULT_THRESHOLD
from core.evaluate.mcnemar import correct_calls, paired_mcnemar
from core.evaluate.table import read_text_csv
from core.roifinder.geometry import iou

PROPOSALS_FILE = "roi_proposals.csv"  # the run folder's finder table (core.roifinder.proposals)
HIT_IOU = 0.3
FROC_RATES: tuple[float, ...] = (0.5, 1.0)
PROPOSED_MODE = "roi_proposed"  # predictions.csv mode of the finder-routed ROI-aware grid
PROPOSED_KEY = "roi_aware_proposed"
_NEEDED = ("image_path", "patient_id", "label", "roi", "roi_probability", "roi_present",
           "boxes", "scores", "truth_boxes")


def read_proposals(path: str | Path) -> pd.DataFrame:
    """The finder table with its JSON columns parsed; a bad file is a CheckpointError."""
    path = Path(path)
    return clean_proposals(read_text_csv(path, "ROI proposal table"), path)


def clean_proposals(df: pd.DataFrame, source: Any = None) -> pd.DataFrame:
    """Validate a finder table: columns present, booleans and probabilities readable,
    boxes JSON lists of ``[x0, y0, x1, y1]``."""
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing:
        raise CheckpointError(f"missing column(s): {', '.join(missing)}", source)
    df = df.copy()
    for col in ("roi", "roi_present"):
        df[col] = df[col].astype(str).str.strip().str.lower().map(
            {"true": True, "1": True, "false": False, "0": False})
        if df[col].isna().any():
            raise CheckpointError(f"column {col!r} has non-boolean values", source)
        df[col] = df[col].astype(bool)
    df["label"] = pd.to_numeric(df["label"], errors="coerce")
    df["roi_probability"] = pd.to_numeric(df["roi_probability"], errors="coerce")
    if df[["label", "roi_probability"]].isna().any().any():
        raise CheckpointError("columns 'label' / 'roi_probability' need numbers", source)
    df["patient_id"] = df["patient_id"].astype(str)
    for col in ("boxes", "scores", "truth_boxes"):
        try:
            df[col] = [json.loads(v) if isinstance(v, str) else list(v) for v in df[col]]
        except (json.JSONDecodeError, TypeError) as err:
            raise CheckpointError(f"column {col!r} is not JSON lists ({err})", source) from None
    if any(len(b) != len(s) for b, s in zip(df["boxes"], df["scores"])):
        raise CheckpointError("every proposed box needs one score", source)
    return df


def box_iou(table: pd.DataFrame) -> dict[str, Any]:
    """Mean over annotated ROIs of their best IoU with a proposal, and how many ROIs."""
    best = [max((iou(t, b) for b in boxes), default=0.0)
            for truths, boxes in zip(table["truth_boxes"], table["boxes"]) for t in truths]
    return {"value": float(np.mean(best)) if best else None, "n_rois": len(best)}


def froc(table: pd.DataFrame, hit_iou: float = HIT_IOU) -> dict[str, Any]:
    """FROC curve (``fp_per_image``, ``sensitivity`` at every score cut, most strict first)
    and the sensitivity at each of :data:`FROC_RATES` false positives per image."""
    n_images = len(table)
    n_rois = int(sum(len(t) for t in table["truth_boxes"]))
    cands = []  # (score, ids of the ROIs it hits)
    offset = 0
    for truths, boxes, scores in zip(table["truth_boxes"], table["boxes"], table["scores"]):
        for box, score in zip(boxes, scores):
            hits = {offset + k for k, t in enumerate(truths) if iou(t, box) >= hit_iou}
            cands.append((float(score), hits))
        offset += len(truths)
    cands.sort(key=lambda c: -c[0])
    fps, sens, hit, fp = [0.0], [0.0], set(), 0
    i = 0
    while i < len(cands):  # candidates with the same score enter together
        j = i
        while j < len(cands) and cands[j][0] == cands[i][0]:
            hit |= cands[j][1]
            fp += not cands[j][1]
            j += 1
        fps.append(fp / n_images if n_images else 0.0)
        sens.append(len(hit) / n_rois if n_rois else float("nan"))
        i = j
    points = {}
    for rate in FROC_RATES:
        ok = [s for f, s in zip(fps, sens) if f <= rate + 1e-12]
        points[f"sensitivity_at_{rate:g}_fp"] = max(ok) if ok and n_rois else None
    return {"hit_iou": hit_iou, "n_rois": n_rois, "n_images": n_images,
            "fp_per_image": fps, "sensitivity": sens, **points}


def roi_model_metrics(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``roi_model`` of metrics.json and the ``roi_presence_proposed`` reference row."""
    table = clean_proposals(table) if table["boxes"].map(lambda v: isinstance(v, str)).any() else table
    patients = pd.Index(pd.unique(table["patient_id"]))
    codes = patients.get_indexer(table["patient_id"])
    boot = patient_bootstrap_weights(len(patients), n_boot, seed)
    truth = table["roi"].to_numpy().astype(int)
    call = table["roi_present"].to_numpy().astype(int)
    prob = table["roi_probability"].to_numpy(float)
    block = metric_block(truth, call, codes, boot, auc_samples(truth, prob, codes, boot))
    label = table["label"].to_numpy().astype(int)
    as_malignant = metric_block(label, call, codes, boot,
                                auc_samples(label, call.astype(float), codes, boot))
    threshold = table["threshold"].iloc[0] if "threshold" in table.columns and len(table) else None
    return {
        "roi_model": {
            "n_images": int(len(table)), "n_with_roi": int(truth.sum()),
            "threshold": None if threshold is None else float(threshold),
            "presence_auc": block["roc_auc"], "presence_sensitivity": block["sensitivity"],
            "presence_specificity": block["specificity"],
            "box_iou": box_iou(table), "froc": froc(table),
        },
        "roi_presence_proposed": as_malignant,
    }


def proposed_mcnemar(df: pd.DataFrame) -> dict[str, Any]:
    """Exact McNemar of the finder-routed ROI-aware grid vs the baseline and vs the
    annotation-routed grid, at 0.5 and at the tuned thresholds (None when a side is absent)."""
    prop = df[df["mode"] == PROPOSED_MODE]
    out: dict[str, Any] = {}
    for name, mode in (("vs_baseline", "baseline"), ("vs_annotated", "roi")):
        other = df[df["mode"] == mode]
        out[name] = {}
        for at, tuned in (("at_0.5", False), ("at_tuned", True)):
            if prop.empty or other.empty:
                out[name][at] = None
                continue
            a = correct_calls(other, other["threshold"].to_numpy() if tuned else DEFAULT_THRESHOLD)
            b = correct_calls(prop, prop["threshold"].to_numpy() if tuned else DEFAULT_THRESHOLD)
            common = a.index.intersection(b.index)
            out[name][at] = paired_mcnemar(a.loc[common].to_numpy(), b.loc[common].to_numpy())
    return out


def format_roi_model(result: dict[str, Any]) -> str:
    """What ``evaluate`` prints about the finder: the three routings side by side, the
    McNemar tests of the finder-routed grid, and the finder's own presence and box figures."""
    from core.evaluate.report import format_cell, format_p, format_paired, format_value

    lines = ["ROI routing (threshold 0.5): annotated ROI vs ROI proposed by the finder vs none "
             "(baseline)"]
    for name, key in (("annotated", "roi_aware"), ("proposed", PROPOSED_KEY),
                      ("none (baseline)", "baseline")):
        block = result.get(key) or {}
        lines.append(f"  {name:<16} " + "  ".join(
            f"{m} {format_cell(block.get(m) or {})}" for m in ("sensitivity", "specificity",
                                                             "accuracy", "roc_auc")))
    for name, key in (("baseline", "vs_baseline"), ("annotated routing", "vs_annotated")):
        mc = ((result.get("mcnemar_proposed") or {}).get(key) or {}).get("at_0.5")
        if mc:
            lines.append(f"  McNemar exact, proposed vs {name}: p = {format_p(mc['p'])} "
                         f"(only {name} right {mc['b']}, only proposed right {mc['c']})")
    if result.get("paired_proposed"):
        lines += ["  " + line for line in format_paired(result["paired_proposed"], "0.5",
                                                        "baseline", "proposed routing")]
    if result.get("roi_model"):
        lines.append(finder_sentence(result["roi_model"], format_cell, format_value))
    return "\n".join(lines)


def finder_sentence(rm: Mapping[str, Any], cell: Callable[[Mapping[str, Any]], str],
                    value: Callable[[float | None], str]) -> str:
    """The finder's presence, box and FROC figures in one sentence: one wording for the
    printed report and the Compare page, each passing its own number formats."""
    fr = rm["froc"]
    return (f"ROI finder on {rm['n_images']} test images ({rm['n_with_roi']} with an annotated "
            f"ROI): presence AUC {cell(rm['presence_auc'])}, sensitivity "
            f"{cell(rm['presence_sensitivity'])}, specificity {cell(rm['presence_specificity'])} "
            f"at its stored threshold; mean best box IoU {value(rm['box_iou']['value'])} over "
            f"{rm['box_iou']['n_rois']} ROIs; FROC sensitivity {value(fr.get('sensitivity_at_0.5_fp'))} "
            f"at 0.5 and {value(fr.get('sensitivity_at_1_fp'))} at 1 false positive per image "
            f"(hit = IoU ≥ {fr['hit_iou']}).")
