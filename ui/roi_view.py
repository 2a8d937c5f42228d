"""The Compare page's ROI-finder block: three routings side by side and the FROC curve.

Reads only ``metrics.json`` (keys written by :mod:`core.evaluate.roifinder`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.evaluate.report import format_p
from core.evaluate.roifinder import finder_sentence
from core.review.report import finder_words
from core.wording import count
from ui.common import fmt2
from ui.metrics_view import with_ci

ROUTINGS: tuple[tuple[str, str], ...] = (
    ("roi_aware", "ROI-aware, routed by the annotated ROI"),
    ("roi_aware_proposed", "ROI-aware, routed by the ROI finder"),
    ("baseline", "no routing (baseline)"),
    ("roi_presence_only", "reference: annotated ROI presence only"),
    ("roi_presence_proposed", "reference: proposed ROI presence only"),
)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
    ("accuracy", "Accuracy"), ("roc_auc", "ROC AUC"),
)


def has_finder(result: Mapping[str, Any]) -> bool:
    """Whether the run's evaluation carries the ROI finder's rows."""
    return bool(result.get("roi_model") or result.get("roi_aware_proposed"))


def routing_table(result: Mapping[str, Any], tuned: bool = False) -> pd.DataFrame:
    """One row per routing (and the two presence-only references) with CIs."""
    rows = []
    for key, title in ROUTINGS:
        block = (result.get("tuned") or {}).get(key) if tuned else None
        block = block or result.get(key)
        if not block:
            continue
        rows.append({"routing": title, **{name: with_ci(block.get(metric))
                                          for metric, name in COLUMNS}})
    return pd.DataFrame(rows)


def froc_figure(result: Mapping[str, Any]) -> go.Figure:
    """Sensitivity per annotated ROI against false-positive boxes per image."""
    froc = (result.get("roi_model") or {}).get("froc") or {}
    fig = go.Figure(go.Scatter(x=froc.get("fp_per_image", []), y=froc.get("sensitivity", []),
                               mode="lines+markers", line_shape="hv", name="ROI finder"))
    for rate in (0.5, 1.0):
        fig.add_vline(x=rate, line_dash="dot", line_color="grey")
    fig.update_layout(title=f"FROC (hit: IoU ≥ {froc.get('hit_iou', 0.3)})",
                      xaxis_title="false-positive boxes per image",
                      yaxis_title="share of annotated ROIs found", yaxis_range=[0, 1],
                      height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def finder_caption(result: Mapping[str, Any]) -> str:
    """The finder's presence, box and FROC figures, and both McNemar tests, in one paragraph."""
    parts = []
    if result.get("roi_model"):
        parts.append(finder_sentence(result["roi_model"], with_ci, fmt2))
    for key, name in (("vs_baseline", "the baseline"), ("vs_annotated", "annotated routing")):
        mc = ((result.get("mcnemar_proposed") or {}).get(key) or {}).get("at_0.5")
        if mc:
            parts.append(f"McNemar, proposed routing vs {name}: p = {format_p(mc['p'])} "
                         f"({count(mc['b'], 'image')} only {name} got right, {mc['c']} only the "
                         "proposed routing).")
    return " ".join(parts)


def roi_source_text(r: Any) -> str:
    """Which ROI served a view in case review: the user's, the finder's, or none."""
    if r.roi_source == "mask":
        return "ROI source: your mask or box"
    if r.roi_source == "proposed":
        call = "ROI proposed" if r.roi else "no ROI found"
        return (f"ROI source: the ROI finder ({call}, {finder_words(r)}; accept, "
                "edit or reject it below)")
    return "ROI source: none given"
