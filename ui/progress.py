"""Live view of a run folder: per-cell progress, loss curves, speed and ETA."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from core.grid import plan
from core.runs import RunSummary, read_progress

TRAINING_EVENTS = ("step", "epoch")


def _fraction(event: dict[str, Any]) -> float:
    epochs, steps = max(1, int(event.get("epochs") or 1)), max(1, int(event.get("steps") or 1))
    done = (int(event.get("epoch") or 1) - 1) * steps + int(event.get("step") or 0)
    return min(1.0, max(0.0, done / (epochs * steps)))


def _cell_key(event: dict[str, Any]) -> str:
    fold = event.get("fold")
    return f"CV fold {fold} · {event.get('cell')}" if fold is not None else str(event.get("cell"))


def cell_rows(run: RunSummary, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell (grid order, then CV folds): status, fraction, epoch, loss, reason."""
    cells = dict(run.info.get("cells") or {})
    order = [c.name for m in run.info.get("modes", ["baseline", "roi"]) for c in plan(m)]
    last: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.get("event") in TRAINING_EVENTS and ev.get("cell"):
            last[_cell_key(ev)] = ev
    names = [n for n in order if n in cells or n in last]
    names += [n for n in list(cells) + list(last) if n not in names]
    rows = []
    for name in names:
        entry, ev = cells.get(name, {}), last.get(name, {})
        status = str(entry.get("status") or ("running" if ev else "pending"))
        fraction = 1.0 if status == "done" else _fraction(ev) if ev else 0.0
        rows.append({"cell": name, "status": status, "fraction": fraction,
                     "epoch": ev.get("epoch"), "epochs": ev.get("epochs"),
                     "loss": ev.get("loss"), "reason": entry.get("reason")})
    return rows


def loss_figure(events: list[dict[str, Any]]) -> go.Figure | None:
    """Training loss per cell against (fractional) epoch; validation loss dotted."""
    series: dict[str, dict[str, list[float]]] = {}
    for ev in events:
        if ev.get("event") not in TRAINING_EVENTS or ev.get("loss") is None:
            continue
        s = series.setdefault(_cell_key(ev), {"x": [], "y": [], "vx": [], "vy": []})
        steps = max(1, int(ev.get("steps") or 1))
        s["x"].append(int(ev.get("epoch") or 1) - 1 + int(ev.get("step") or 0) / steps)
        s["y"].append(float(ev["loss"]))
        if ev.get("event") == "epoch" and ev.get("val_loss") is not None:
            s["vx"].append(float(ev.get("epoch") or 1))
            s["vy"].append(float(ev["val_loss"]))
    if not series:
        return None
    fig = go.Figure()
    for name, s in series.items():
        fig.add_trace(go.Scatter(x=s["x"], y=s["y"], mode="lines+markers", name=name,
                                 legendgroup=name, marker={"size": 4}))
        if s["vx"]:
            fig.add_trace(go.Scatter(x=s["vx"], y=s["vy"], mode="markers+lines", name=f"{name} val",
                                     legendgroup=name, line={"dash": "dot"}, showlegend=False))
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": "Loss (solid: training, dotted: validation)", "font": {"size": 13}},
                      xaxis_title="epoch", yaxis_title="BCE loss", legend={"font": {"size": 10}})
    return fig


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "–"
    s = int(float(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render_progress(run: RunSummary, compact: bool = False) -> None:
    """Per-cell bars, speed, ETA and (unless ``compact``) the loss curves of one run."""
    events = read_progress(run.path)
    rows = cell_rows(run, events)
    live = [e for e in events if e.get("event") in TRAINING_EVENTS]
    done = sum(r["status"] == "done" for r in rows)
    st.markdown(f"Status: **{run.status}**")
    c1, c2, c3 = st.columns(3)
    c1.metric("Cells done", f"{done}/{len(rows)}" if rows else "–")
    c2.metric("Images/s", f"{live[-1].get('img_s') or 0:.1f}" if live else "–")
    eta = events[-1].get("eta_s") if events and run.status == "running" else None
    c3.metric("ETA", _duration(eta) if run.status == "running" else "–")
    if run.info.get("error"):
        st.error(str(run.info["error"]))
    if not rows:
        st.caption("Waiting for the first training step (reading and preprocessing images) …")
    for row in rows if not compact else [r for r in rows if r["status"] != "done"][:3]:
        if row["status"] == "skipped":
            st.caption(f"**{row['cell']}** skipped: {row['reason'] or 'too few images'}")
            continue
        detail = f"epoch {row['epoch']}/{row['epochs']}" if row["epoch"] else row["status"]
        loss = f" · loss {row['loss']:.3f}" if row["loss"] is not None else ""
        st.progress(row["fraction"], text=f"**{row['cell']}** · {detail}{loss}")
    if not compact:
        fig = loss_figure(events)
        if fig is not None:
            st.plotly_chart(fig, width="stretch", key=f"loss-{run.name}")
