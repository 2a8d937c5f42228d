"""Case review: one study, four views, routed predictions from both grids with Grad-CAM."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.crop import map_to_full
from core.datasets import load_dataset
from core.errors import MammoError
from core.grid import VIEWS
from core.predict import Predictor, ViewResult
from core.runs import RUN_FILE, RunSummary
from core.readout import shown_call
from ui.case import (BREAST_RULE, MAX_VIEWS, SOURCE_TEXT, UPLOAD_TYPES, CaseView, box_mask,
                     breast_summary, cell_counts, export_rows, hanging_order, read_mask_upload,
                     read_upload, signature, study_choices, study_views, threshold_note, to_inputs,
                     view_problems)
from ui.common import (architecture_notice, ensure_app_navigation, selected_run, show_error,
                       synthetic_notice)
from ui.images import cam_overlay, draw_outline, fit_height, needs_mirror, to_rgb
from ui.roi_view import roi_source_text

PANEL_HEIGHT = 380
ROUTING_PREFIXES = ("ROI-aware: ", "baseline: ")
ROI_LABELS: dict[str, str] = {"finder": "ROI finder", "none": "No ROI", "dataset": "Dataset ROI",
                              "mask": "Upload mask", "box": "Draw box"}

ensure_app_navigation()

st.title("Case review")


@st.cache_resource(show_spinner=False, max_entries=2)
def predictor(run_path: str, run_mtime: float, device: str = "auto") -> Predictor:
    """Models of a run, loaded once per (run folder, run.json version)."""
    return Predictor(run_path, device)


@st.cache_data(show_spinner="Reading the dataset …", max_entries=4)
def dataset_table(path: str, mtime: float) -> pd.DataFrame:
    return load_dataset(path)


def colour_call(p: float | None, threshold: float | None) -> str:
    """The call beside its numbers, rounded so they never contradict it (core.readout)."""
    if p is None:
        return "–"
    shown = shown_call(p, threshold)
    colour = "red" if shown.malignant else "green"
    return f":{colour}[**{shown.probability}** → {shown.word}] · threshold {shown.threshold}"


def breast_cell(p: float | None, threshold: float | None, view: str | None) -> str:
    if p is None:
        return "–"
    shown = shown_call(p, threshold)
    return f"{shown.probability} {shown.relation} {shown.threshold} ({view})"


# ------------------------------------------------------------------ inputs

def uploaded_views() -> list[CaseView]:
    files = st.file_uploader("Mammograms of one study (up to four views: DICOM or images)",
                             type=list(UPLOAD_TYPES), accept_multiple_files=True, key="uploads")
    cache: dict[str, CaseView] = st.session_state.setdefault("decoded", {})
    views = []
    for f in files or []:
        key = f"{f.file_id}"
        if key not in cache:
            cache[key] = read_upload(f.name, f.getvalue(), key)
        views.append(cache[key])
    for stale in set(cache) - {v.key for v in views}:
        del cache[stale]
    if len(views) > MAX_VIEWS:
        st.error(f"{len(views)} files uploaded: a study has at most {MAX_VIEWS} views; "
                 f"the first {MAX_VIEWS} are used.")
        views = views[:MAX_VIEWS]
    return views


def dataset_views(run: RunSummary, show_ids: bool) -> list[CaseView]:
    path = run.info.get("dataset_path")
    if not path or not Path(path).exists():
        st.info("This run's dataset is not on this computer; upload a study instead.")
        return []
    try:
        df = dataset_table(str(path), Path(path).stat().st_mtime)
    except MammoError as err:
        show_error(err)
        return []
    studies = study_choices(df)
    if not studies:
        st.info("The run's dataset has no test split.")
        return []

    def label(i: int) -> str:
        s = studies[i]
        ident = f"study {s['study_id']}" if show_ids else f"test study {i + 1}"
        return f"{ident} · {s['views']} views · ROI in {s['with_roi']}"

    i = st.selectbox(f"Test study ({len(studies)} in the run's held-out split)",
                     range(len(studies)), format_func=label, key="study_pick")
    key = ("study", str(path), studies[i]["study_id"])
    if st.session_state.get("study_key") != key:
        st.session_state["study_key"] = key
        st.session_state["study_views"] = study_views(df, studies[i]["study_id"])
    return st.session_state["study_views"]


def box_picker(v: CaseView) -> None:
    """Draw a box on the image (plotly box selection) or type its corners."""
    disp = v.display
    h, w = v.shape
    sx, sy = w / disp.shape[1], h / disp.shape[0]
    fig = go.Figure(go.Image(z=to_rgb(disp), hoverinfo="skip"))
    step = max(4, disp.shape[1] // 24)
    ys, xs = np.mgrid[0:disp.shape[0]:step, 0:disp.shape[1]:step]
    fig.add_trace(go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", hoverinfo="skip",
                             marker={"opacity": 0, "size": 2}, showlegend=False))
    fig.update_layout(dragmode="select", height=300, margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      xaxis={"visible": False}, yaxis={"visible": False})
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="box", key=f"draw-{v.key}",
                            config={"displayModeBar": False})
    boxes = (event or {}).get("selection", {}).get("box", []) if event else []
    names = [f"{c}-{v.key}" for c in ("x0", "y0", "x1", "y1")]
    if boxes:
        b = boxes[-1]
        drawn = (min(b["x"]) * sx, min(b["y"]) * sy, max(b["x"]) * sx, max(b["y"]) * sy)
        if st.session_state.get(f"drawn-{v.key}") != drawn:
            st.session_state[f"drawn-{v.key}"] = drawn
            for n, value in zip(names, drawn):
                st.session_state[n] = int(round(value))
    c = st.columns(4)
    limits = (w, h, w, h)
    defaults = (0, 0, 0, 0)
    values = [c[i].number_input(lab, 0, limits[i], defaults[i], key=names[i])
              for i, lab in enumerate(("x min", "y min", "x max", "y max"))]
    if values[2] > values[0] and values[3] > values[1]:
        v.mask = box_mask(v.shape, values)
        st.caption(f"Box {values[2] - values[0]} × {values[3] - values[1]} px (image pixels)")
    else:
        v.mask = None
        st.caption("Drag a box on the image, or type its corners in image pixels.")


def view_editor(v: CaseView, show_ids: bool, index: int) -> None:
    """One file: its view (correctable) and its optional ROI."""
    title = v.name if show_ids else f"file {index + 1}"
    if v.error:
        st.error(v.error if show_ids else v.error.replace(v.name, title), icon=":material/error:")
        return
    c1, c2, c3 = st.columns([2, 2, 3])
    options = list(VIEWS)
    chosen = c1.selectbox(f"View of {title}", options,
                          index=options.index(v.view) if v.view in options else None,
                          placeholder="choose the view", key=f"view-{v.key}",
                          help=f"Detected from: {SOURCE_TEXT.get(v.view_source, 'nothing')}")
    if chosen != v.view:
        v.view, v.view_source = chosen, "user"
    c1.caption(f"from {SOURCE_TEXT.get(v.view_source, 'nothing')}")
    roi_options = ((["finder"] if has_finder else []) + ["none"]
                   + (["dataset"] if v.dataset_mask is not None else []) + ["mask", "box"])
    roi = c2.segmented_control("ROI", roi_options, format_func=ROI_LABELS.get, required=True,
                               default="dataset" if v.dataset_mask is not None else roi_options[0],
                               key=f"roi-{v.key}")
    v.propose = roi == "finder"
    with c3:
        if roi == "finder":
            v.mask = None
            st.caption("The run's ROI finder decides whether this view has an ROI; its boxes "
                       "are shown after Predict, to accept, edit or reject.")
        elif roi == "none":
            v.mask = None
            st.caption("No ROI: this view goes to a “without ROI” model.")
        elif roi == "dataset":
            v.mask = v.dataset_mask
            st.caption("The dataset's annotation routes this view to a “with ROI” model.")
        elif roi == "mask":
            f = st.file_uploader("Mask (binary image, same size as the mammogram)",
                                 type=["png", "jpg", "jpeg", "pgm", "tif", "tiff", "bmp"],
                                 key=f"mask-{v.key}")
            v.mask = None
            if f is not None:
                try:
                    v.mask = read_mask_upload(f.name, f.getvalue(), v.shape)
                except MammoError as err:
                    show_error(err)
    if roi == "box":
        box_picker(v)
    for w in v.warnings:
        st.caption(f"⚠️ {w}")


# ------------------------------------------------------------------ results

def _take_proposal(v: CaseView, box: list[float] | None) -> None:
    """Button callback: a proposed box becomes the view's own (editable) box, or the
    proposal is rejected (``box`` None: the view routes as without ROI)."""
    if box is None:
        st.session_state[f"roi-{v.key}"] = "none"
        return
    st.session_state[f"roi-{v.key}"] = "box"
    for name, value in zip(("x0", "y0", "x1", "y1"), box):
        st.session_state[f"{name}-{v.key}"] = int(round(value))


def proposal_actions(v: CaseView, r: ViewResult) -> None:
    """Accept (the box becomes yours and can be edited under "Views and ROIs") or reject
    the finder's answer for this view; Predict again to route by the choice."""
    c1, c2 = st.columns(2)
    if r.roi and r.roi_boxes:
        box = [min(b[0] for b in r.roi_boxes), min(b[1] for b in r.roi_boxes),
               max(b[2] for b in r.roi_boxes), max(b[3] for b in r.roi_boxes)]
        c1.button("Accept / edit box", key=f"accept-{v.key}", on_click=_take_proposal,
                  args=(v, box), help="The proposed box becomes this view's box (editable "
                  "under “Views and ROIs”); press Predict to route by it.")
        c2.button("Reject", key=f"reject-{v.key}", on_click=_take_proposal, args=(v, None),
                  help="No ROI for this view; press Predict to route it as without ROI.")
    else:
        c1.button("Draw a box instead", key=f"accept-{v.key}", on_click=_take_proposal,
                  args=(v, [0, 0, 0, 0]), help="The finder found no ROI; draw one yourself.")


def panel(r: ViewResult | None, v: CaseView | None, run: RunSummary, source: str,
          opacity: float, show_ids: bool) -> None:
    with st.container(border=True):
        if r is None:
            st.caption("—  not in this study")
            return
        st.markdown(f"**{r.view or '?'}**" + (f" · {v.name}" if show_ids and v else ""))
        if r.error:
            st.error(r.error if show_ids or v is None else r.error.replace(v.name, r.view or "view"),
                     icon=":material/error:")
            return
        cam = {"ROI-aware": r.cam_roi_aware, "Baseline": r.cam_baseline}.get(source)
        base = v.display if v is not None and v.display is not None else r.preprocessed
        if cam is not None and base is not r.preprocessed and r.box is not None:
            cam = map_to_full(cam, r.box, base.shape)  # back through the breast crop
        mask = v.mask if v is not None and v.mask is not None and r.roi else r.mask
        if v is not None and r.roi_source == "proposed" and r.roi_boxes:
            mask = np.maximum.reduce([box_mask(v.shape, b) for b in r.roi_boxes])
        img = fit_height(draw_outline(cam_overlay(base, cam, opacity), mask), PANEL_HEIGHT)
        mirrored = needs_mirror(r.view, base)
        st.image(img[:, ::-1] if mirrored else img, width="content")
        if mirrored:
            st.caption("mirrored for the hanging layout")
        st.markdown(f"ROI-aware: {colour_call(r.p_malignant_roi_aware, r.threshold_roi_aware)}  \n"
                    f"Baseline: {colour_call(r.p_malignant_baseline, r.threshold_baseline)}")
        notes = [(grid, threshold_note(run.path, cell, p, t)) for grid, cell, p, t in (
            ("ROI-aware", r.cell_roi_aware, r.p_malignant_roi_aware, r.threshold_roi_aware),
            ("Baseline", r.cell_baseline, r.p_malignant_baseline, r.threshold_baseline))]
        st.caption("  \n".join(f"{grid} model: {note}." for grid, note in notes if note))
        cell = r.cell_roi_aware or "–"
        st.caption(f"Routed to **{cell}** (ROI-aware) and **{r.cell_baseline or '–'}** (baseline)"
                   + (" · ROI outlined" if r.roi else " · no ROI") + " · " + roi_source_text(r))
        if v is not None and r.roi_source == "proposed":
            proposal_actions(v, r)
        if r.fallback:
            st.warning(f"Fallback: {r.fallback_reason}", icon=":material/alt_route:")
        if not r.roi and (r.cell_roi_aware or "").startswith("noroi"):
            counts = cell_counts(run.path, r.cell_roi_aware)
            seen = (f" It was trained on {counts.get('benign', 0)} benign and "
                    f"{counts.get('malignant', 0)} malignant images." if counts else "")
            st.info("No ROI was given, so a **without ROI** model answered. In VinDr-like data "
                    "those models saw almost only benign images, so a low probability here is "
                    f"weak reassurance.{seen} If you see a lesion, draw a box and predict again.",
                    icon=":material/info:")
        if v is not None and v.label:
            st.caption(f"Ground truth (dataset): **{v.label}**")
        for w in r.warnings:
            if not (r.fallback and w.startswith(ROUTING_PREFIXES)):  # shown above already
                st.caption(f"⚠️ {w}")


def show_results(results: list[ViewResult], views: list[CaseView], run: RunSummary,
                 show_ids: bool) -> None:
    c1, c2 = st.columns([2, 3])
    source = c1.segmented_control("Grad-CAM of", ["ROI-aware", "Baseline", "Off"],
                                  default="ROI-aware", required=True, key="cam_source")
    opacity = c2.slider("Grad-CAM opacity", 0.0, 1.0, 0.5, 0.05, key="cam_opacity")
    by_name = {v.name: v for v in views}
    grid = hanging_order(results)
    for row in grid:
        cols = st.columns(2, gap="small")
        for col, r in zip(cols, row):
            with col:
                panel(r, by_name.get(r.image) if r else None, run, source, opacity, show_ids)
    for r in [r for r in results if r.view not in VIEWS]:
        panel(r, by_name.get(r.image), run, source, opacity, show_ids)
    st.subheader("Per breast")
    rows = breast_summary(results)
    st.table(pd.DataFrame([{
        "breast": b["breast"], "views": b["views"] or "–",
        "ROI-aware: deciding view": breast_cell(b["p_roi_aware"], b["threshold_roi_aware"],
                                                b["view_roi_aware"]),
        "ROI-aware call": b["call_roi_aware"] or "–",
        "baseline: deciding view": breast_cell(b["p_baseline"], b["threshold_baseline"],
                                               b["view_baseline"]),
        "baseline call": b["call_baseline"] or "–",
    } for b in rows]).set_index("breast"))
    st.caption(BREAST_RULE + " Probabilities are calibrated on each model's validation images "
               "(temperature scaling), so about 30 % means about 3 in 10 such images were cancers "
               "there.")
    export = export_rows(results, views)
    meta = {"run": run.name, "arch": run.info.get("arch"), "synthetic": run.synthetic}
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Download CSV", pd.DataFrame(export).to_csv(index=False),
                       "case-results.csv", "text/csv", on_click="ignore")
    d2.download_button("Download JSON", json.dumps({**meta, "views": export,
                                                    "breasts": rows}, indent=2),
                       "case-results.json", "application/json", on_click="ignore")


# ------------------------------------------------------------------ page

run = selected_run()
if run is None:
    st.info("No trained run yet. Build the demo on Home or train a grid first.")
    st.stop()
if run.synthetic:
    synthetic_notice()
architecture_notice([run])
top1, top2 = st.columns([3, 1])
source_choice = top1.segmented_control(
    "Study", ["dataset", "upload"], required=True,
    default="dataset" if run.info.get("dataset_path") else "upload",
    format_func={"dataset": "Test study of the run's dataset", "upload": "Upload a study"}.get,
    key="case_source")
show_ids = top2.toggle("Show identifiers", value=False,
                       help="File names, patient and study ids. Off by default; downloads never "
                            "contain them.")
views = dataset_views(run, show_ids) if source_choice == "dataset" else uploaded_views()
if not views:
    st.stop()

has_finder = (run.info.get("roi_model") or {}).get("status") == "done"
with st.expander("Views and ROIs", expanded=source_choice == "upload"):
    for i, v in enumerate(views):
        view_editor(v, show_ids, i)
problems = view_problems(views)
for p in problems:
    st.warning(p)
propose = has_finder and st.toggle(
    "ROI finder proposes an ROI for views without one", value=True,
    help="The run has an ROI finder. On: a view without a mask or box is routed by the "
         "finder's answer. Off: it routes as without ROI. A mask or box you give always wins.")
sig = f"{run.path}|{signature(views)}|{propose}"
if st.button("Predict", type="primary", disabled=bool(problems)):
    try:
        model = predictor(str(run.path), (run.path / RUN_FILE).stat().st_mtime)
        with st.spinner("Routing and predicting, with Grad-CAM …"):
            results = model.predict_study(to_inputs(views), cam=True, propose=propose)
        failed = [ViewResult(image=v.name, error=v.error) for v in views if v.error]
        st.session_state["case_results"] = (sig, results + failed)
    except MammoError as err:
        show_error(err)
stored = st.session_state.get("case_results")
if stored and stored[0] == sig:
    show_results(stored[1], views, run, show_ids)
elif stored:
    st.caption("The study, a view or an ROI changed: press Predict again.")
