"""Live view of a run folder: per-part progress, loss and validation-AUC curves, speed, ETA."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.runfolder.layout import RunSummary, read_progress
from core.runfolder.progress import (
    TRAINING_EVENTS,
    CellRow,
    Curve,
    Part,
    cell_count,
    cell_table,
    curves,
    eta_seconds,
    overall_fraction,
    parts,
    phase,
)

# Twelve cells and the warm-start model, each its own colour (Tableau 10 and three more).
CURVE_COLOURS: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#79706e", "#17becf", "#bcbd22", "#1f1f7a")
PHASE_TEXT: dict[str, str] = {
    "preparing": "reading the dataset and preprocessing images …",
    "evaluating": "every model is trained; predicting and scoring the test split …",
}
KIND_LABEL: dict[str, str] = {"pooled": "warm-start model", "finder": "ROI finder"}


def duration(seconds: Any) -> str:
    """``1h02m``, ``4m05s``; an en dash when unknown."""
    if seconds is None:
        return "–"
    s = int(float(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def curve_colours(keys: list[str]) -> dict[str, str]:
    """A colour per part, in the order given (the run's training order, so stable)."""
    return {k: CURVE_COLOURS[i % len(CURVE_COLOURS)] for i, k in enumerate(keys)}


def _label(part: Part) -> str:
    return f"{part.key} ({KIND_LABEL[part.kind]})" if part.kind in KIND_LABEL else part.key


def curves_figure(found: list[Part], events: list[dict[str, Any]]) -> go.Figure | None:
    """Loss (training solid, validation dotted) and validation ROC AUC, one colour per part."""
    data = curves(events)
    if not data:
        return None
    colours = curve_colours([p.key for p in found if p.key in data])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Loss (solid: training, dotted: validation)",
                                        "Validation ROC AUC"))
    for key, colour in colours.items():
        _add_curves(fig, key, data[key], colour)
    fig.update_layout(height=400, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"font": {"size": 10}, "orientation": "h", "yanchor": "top",
                              "y": -0.22, "x": 0})
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="BCE loss", row=1, col=1)
    fig.update_yaxes(title_text="AUC", range=[0, 1.02], row=1, col=2)
    fig.update_annotations(font_size=13)
    return fig


def _add_curves(fig: go.Figure, key: str, c: Curve, colour: str) -> None:
    line = {"color": colour}
    fig.add_trace(go.Scatter(x=c.x, y=c.loss, mode="lines+markers", name=key, legendgroup=key,
                             line=line, marker={"size": 3}), row=1, col=1)
    if any(v is not None for v in c.val_loss):
        fig.add_trace(go.Scatter(x=c.val_x, y=c.val_loss, mode="lines+markers",
                                 name=f"{key} validation", legendgroup=key, showlegend=False,
                                 line={**line, "dash": "dot"}, marker={"size": 4}), row=1, col=1)
    if any(v is not None for v in c.val_auc):
        fig.add_trace(go.Scatter(x=c.val_x, y=c.val_auc, mode="lines+markers",
                                 name=f"{key} AUC", legendgroup=key, showlegend=False,
                                 line=line, marker={"size": 4}), row=1, col=2)


def render_progress(run: RunSummary, compact: bool = False) -> None:
    """Counts, speed, ETA, one bar per part and (unless ``compact``) the curves of one run."""
    events = read_progress(run.path)
    found = parts(run, events)
    count = cell_count(found)
    now = phase(run, found)
    live = [e for e in events if e.get("event") in TRAINING_EVENTS]
    c1, c2, c3 = st.columns(3)
    c1.metric("Cells done", f"{count.finished}/{count.total}" if count.total else "–",
              help="Trained and skipped cells: a skipped cell has too few images to train.")
    c2.metric("Images/s", f"{live[-1].get('img_s') or 0:.1f}" if live and now == "training"
              else "–")
    c3.metric("ETA", duration(eta_seconds(run, events, found)))
    if count.skipped:
        st.caption(f"{count.trained} trained · {count.skipped} skipped (too few images)")
    if now in PHASE_TEXT:
        st.caption(PHASE_TEXT[now])
    overall = overall_fraction(events)
    if overall is not None and now == "training":
        st.progress(overall, text=f"Whole run: {overall:.0%} of its training steps")
    shown = found if not compact else [p for p in found if not p.finished][:3]
    for part in shown:
        _render_part(part)
    if not compact:
        _render_cells(cell_table(events, running=run.status == "running"))
        fig = curves_figure(found, events)
        if fig is not None:
            st.plotly_chart(fig, width="stretch", key=f"curves-{run.name}")


def cells_frame(rows: list[CellRow]) -> pd.DataFrame:
    """The per-cell table as shown: cell, status, node, epoch/of, attempt."""
    return pd.DataFrame([{"cell": r.cell, "status": r.status, "node": r.node or "–",
                          "epoch": f"{r.epoch}/{r.epochs}" if r.epoch else "–",
                          "attempt": "–" if r.attempt is None else str(r.attempt)}
                         for r in rows],
                        columns=["cell", "status", "node", "epoch", "attempt"])


def _render_cells(rows: list[CellRow]) -> None:
    if rows:
        st.caption("Per cell: the machine (node) that trains it, its epoch and attempt.")
        st.dataframe(cells_frame(rows), hide_index=True, width="stretch")


def _render_part(part: Part) -> None:
    if part.status == "skipped":
        st.caption(f"**{_label(part)}** skipped: {part.reason or 'too few images'}")
        return
    if part.status == "done":
        detail, loss = "done", ""
    else:
        detail = f"epoch {part.epoch}/{part.epochs}" if part.epoch else part.status
        loss = f" · loss {part.loss:.3f}" if part.loss is not None else ""
    st.progress(part.fraction, text=f"**{_label(part)}** · {detail}{loss}")
