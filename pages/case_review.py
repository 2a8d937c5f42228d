"""Case review: see the study first, set views and ROIs on it, then read both grids' calls
with Grad-CAM, one stated operating point, and why each view went where it went."""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.datasets import load_dataset
from core.errors import MammoError
from core.grid import VIEWS
from core.pixels.crop import map_to_full
from core.pixels.preprocess import PreprocessParams
from core.predict import Predictor, ViewResult
from core.review.overlay import cam_overlay, cam_scale_bar, draw_outline, hang, to_rgb
from core.review.readout import threshold_sentence
from core.review.report import (
    BREAST_RULE,
    OPERATING_POINTS,
    Call,
    breast_summary,
    cell_meta,
    export_name,
    export_record,
    export_rows,
    routing_sentence,
    view_call,
)
from core.runfolder.layout import RUN_FILE, RunSummary
from ui.case import (
    MAX_VIEWS,
    SOURCE_TEXT,
    UPLOAD_TYPES,
    CaseView,
    box_mask,
    hanging_order,
    read_mask_upload,
    read_upload,
    set_view,
    signature,
    study_choices,
    study_views,
    to_inputs,
    view_conflicts,
    view_problems,
)
from ui.common import (
    architecture_notice,
    ensure_app_navigation,
    keep,
    operating_point_picker,
    selected_run,
    show_error,
    synthetic_notice,
)
from ui.roi_view import roi_source_text

THUMB_HEIGHT = 420
PANEL_HEIGHT = 440
BOX_TOOL_HEIGHT = 620
ROI_LABELS: dict[str, str] = {"finder": "ROI finder", "none": "No ROI", "dataset": "Dataset ROI",
                              "mask": "Mask file", "box": "Draw box"}
ROUTING_PREFIXES = ("ROI-aware: ", "baseline: ")
UPLOADS = "upload_study"  # file id -> (name, bytes, CaseView): the study outlives the uploader

ensure_app_navigation()

st.title("Case review")


@st.cache_resource(show_spinner=False, max_entries=2)
def predictor(run_path: str, run_mtime: float, device: str = "auto") -> Predictor:
    """Models of a run, loaded once per (run folder, run.json version)."""
    return Predictor(run_path, device)


@st.cache_data(show_spinner="Reading the dataset …", max_entries=4)
def dataset_table(path: str, mtime: float) -> pd.DataFrame:
    return load_dataset(path)


# ------------------------------------------------------------------ the study

def _sync_uploads(spec: PreprocessParams) -> None:
    """Uploader callback: add new files to the study, drop the ones removed from it.

    Files the uploader has not shown since the page was opened (a study kept
    across a page switch) stay until removed with "Clear study".
    """
    study: dict = st.session_state.setdefault(UPLOADS, {})
    files = st.session_state.get("uploads") or []
    now = {f.file_id: f for f in files}
    for gone in st.session_state.get("_uploader_ids", set()) - set(now):
        study.pop(gone, None)
    for fid, f in now.items():
        if fid not in study:
            data = f.getvalue()
            study[fid] = (f.name, data, read_upload(f.name, data, spec, fid))
    st.session_state["_uploader_ids"] = set(now)


def uploaded_views(spec: PreprocessParams) -> list[CaseView]:
    st.file_uploader("Mammograms of one study (up to four views: DICOM or images)",
                     type=list(UPLOAD_TYPES), accept_multiple_files=True, key="uploads",
                     on_change=_sync_uploads, args=(spec,))
    if not st.session_state.get("uploads"):
        st.session_state["_uploader_ids"] = set()
    study: dict = st.session_state.setdefault(UPLOADS, {})
    for fid, (name, data, view) in list(study.items()):
        if view.source_side is not None and view.source_side != spec.source_side:
            study[fid] = (name, data, read_upload(name, data, spec, fid))  # another run's spec
    views = [v for _, _, v in study.values()]
    if views and st.button("Clear study", icon=":material/delete:",
                           help="Forget these files and start a new study."):
        study.clear()
        st.session_state.pop("case_results", None)
        st.rerun()
    if len(views) > MAX_VIEWS:
        st.error(f"{len(views)} files uploaded: a study has at most {MAX_VIEWS} views; "
                 f"the first {MAX_VIEWS} are used.")
        views = views[:MAX_VIEWS]
    return views


def dataset_views(run: RunSummary, show_ids: bool, spec: PreprocessParams) -> list[CaseView]:
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

    pick = f"study_pick-{run.name}"  # a new run gets its own picker
    keep(pick, 0)
    if not 0 <= st.session_state[pick] < len(studies):
        st.session_state[pick] = 0
    i = st.selectbox(f"Test study ({len(studies)} in the run's held-out split)",
                     range(len(studies)), format_func=label, key=pick)
    key = ("study", str(path), studies[i]["study_id"], spec)
    if st.session_state.get("study_key") != key:
        st.session_state["study_key"] = key
        st.session_state["study_views"] = study_views(df, studies[i]["study_id"], spec)
        st.session_state["study_label"] = f"test-study-{i + 1}"
    return st.session_state["study_views"]


# ------------------------------------------------------------------ views and ROIs

def box_tool(v: CaseView) -> None:
    """Drag a box on the image (large enough to aim at a lesion) or type its corners."""
    disp = v.display
    h, w = v.shape
    sx, sy = w / disp.shape[1], h / disp.shape[0]
    fig = go.Figure(go.Image(z=np.repeat(disp[..., None], 3, axis=2), hoverinfo="skip"))
    step = max(4, disp.shape[1] // 32)
    ys, xs = np.mgrid[0:disp.shape[0]:step, 0:disp.shape[1]:step]
    fig.add_trace(go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", hoverinfo="skip",
                             marker={"opacity": 0, "size": 2}, showlegend=False))
    if v.box:
        x0, y0, x1, y1 = v.box
        fig.add_shape(type="rect", x0=x0 / sx, y0=y0 / sy, x1=x1 / sx, y1=y1 / sy,
                      line={"color": "rgb(0,230,255)", "width": 3})
    fig.update_layout(dragmode="select", height=BOX_TOOL_HEIGHT,
                      margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      xaxis={"visible": False}, yaxis={"visible": False})
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="box", key=f"draw-{v.key}",
                            config={"displayModeBar": False})
    boxes = (event or {}).get("selection", {}).get("box", []) if event else []
    names = [f"{c}-{v.key}" for c in ("x0", "y0", "x1", "y1")]
    if boxes:
        b = boxes[-1]
        drawn = tuple(int(round(x)) for x in (min(b["x"]) * sx, min(b["y"]) * sy,
                                              max(b["x"]) * sx, max(b["y"]) * sy))
        if st.session_state.get(f"drawn-{v.key}") != drawn:
            st.session_state[f"drawn-{v.key}"] = drawn
            v.box = drawn
            for n in names:
                st.session_state.pop(n, None)
            st.rerun()
    c = st.columns(4)
    current = v.box or (0, 0, 0, 0)
    values = [c[i].number_input(lab, 0, (w, h, w, h)[i], int(current[i]), key=names[i])
              for i, lab in enumerate(("x min", "y min", "x max", "y max"))]
    if values[2] > values[0] and values[3] > values[1]:
        v.box = tuple(values)
        st.caption(f"Box {values[2] - values[0]} × {values[3] - values[1]} px (image pixels)")
    else:
        v.box = None
        st.caption("Drag a box on the image, or type its corners in image pixels.")


def roi_editor(v: CaseView, has_finder: bool) -> None:
    options = ((["finder"] if has_finder else []) + ["none"]
               + (["dataset"] if v.dataset_mask is not None else []) + ["mask", "box"])
    if v.roi_choice not in options:
        v.roi_choice = "dataset" if v.dataset_mask is not None else options[0]
    roi = st.segmented_control("ROI", options, format_func=ROI_LABELS.get, required=True,
                               default=v.roi_choice, key=f"roi-{v.key}")
    v.roi_choice = roi
    v.propose = roi == "finder"
    if roi == "finder":
        st.caption("The run's ROI finder decides whether this view has an ROI; its boxes are "
                   "shown after Predict, to accept, edit or reject.")
    elif roi == "none":
        st.caption("No ROI: this view goes to a “without ROI” model.")
    elif roi == "dataset":
        st.caption("The dataset's annotation routes this view to a “with ROI” model.")
    elif roi == "mask":
        f = st.file_uploader("Mask (binary image, same size as the mammogram)",
                             type=["png", "jpg", "jpeg", "pgm", "tif", "tiff", "bmp"],
                             key=f"mask-{v.key}")
        if f is not None:
            try:
                v.mask_file = read_mask_upload(f.name, f.getvalue(), v.shape)
            except MammoError as err:
                v.mask_file = None
                show_error(err)
        if v.mask_file is None:
            st.caption(f"The mask must be {v.shape[1]} × {v.shape[0]} px, the mammogram's own "
                       "size; or draw a box instead.")
    if roi == "box":
        box_tool(v)
    v.mask = {"dataset": v.dataset_mask, "mask": v.mask_file,
              "box": box_mask(v.shape, v.box) if v.box else None}.get(roi)


def view_card(v: CaseView | None, slot: str | None, show_ids: bool, index: int,
              has_finder: bool) -> None:
    """One file in its place of the hanging: the image first, then its view and ROI."""
    with st.container(border=True):
        if v is None:
            st.caption(f"{slot} · not in this study")
            return
        title = v.name if show_ids else f"file {index + 1}"
        if v.error:
            st.error(v.error if show_ids else v.error.replace(v.name, title),
                     icon=":material/error:")
            return
        if v.roi_choice != "box":
            st.image(hang(draw_outline(to_rgb(v.display), v.mask), v.view, THUMB_HEIGHT, v.display),
                     width="stretch")
        options = list(VIEWS)
        chosen = st.selectbox(f"View of {title}", options,
                              index=options.index(v.view) if v.view in options else None,
                              placeholder="choose the view", key=f"view-{v.key}")
        set_view(v, chosen)
        st.caption("View set by hand" if v.view_source == "user" else
                   f"View from {SOURCE_TEXT.get(v.view_source, 'nothing')}" if v.view else
                   "View not found in the tags, the name or the image: choose it")
        for conflict in view_conflicts(v):
            st.warning(conflict[0].upper() + conflict[1:], icon=":material/warning:")
        roi_editor(v, has_finder)
        for w in v.warnings:
            st.caption(f"⚠️ {w}")


def study_board(views: list[CaseView], show_ids: bool, has_finder: bool) -> None:
    """The uploaded views as the four-view hanging (RCC LCC / RMLO LMLO), unknown last."""
    index = {v.key: i for i, v in enumerate(views)}
    placed = [v for v in views if v.error is None]
    grid = hanging_order(placed)
    for row, slots in zip(grid, (("RCC", "LCC"), ("RMLO", "LMLO"))):
        if all(v is None for v in row) and len(views) < 4:
            continue
        cols = st.columns(2, gap="small")
        for col, v, slot in zip(cols, row, slots):
            with col:
                view_card(v, slot, show_ids, index.get(v.key, 0) if v else 0, has_finder)
    shown = {id(v) for row in grid for v in row if v is not None}
    rest = [v for v in views if id(v) not in shown]  # errors, unknown or repeated views
    for title, group in (("**Not yet placed** (choose each file's view)",
                          [v for v in rest if v.error is None]),
                         ("**Could not be read**", [v for v in rest if v.error is not None])):
        if group:
            st.markdown(title)
            cols = st.columns(2, gap="small")
            for k, v in enumerate(group):
                with cols[k % 2]:
                    view_card(v, None, show_ids, index[v.key], has_finder)


# ------------------------------------------------------------------ results

def _take_proposal(v: CaseView, box: list[float] | None) -> None:
    """Button callback: the proposed box becomes the view's own (editable) box, or the
    proposal is rejected (``box`` None: the view routes as without ROI)."""
    for name in ("x0", "y0", "x1", "y1", "roi"):
        st.session_state.pop(f"{name}-{v.key}", None)
    if box is None:
        v.roi_choice, v.box = "none", None
        return
    v.roi_choice = "box"
    v.box = tuple(int(round(x)) for x in box) if box[2] > box[0] else None


def proposal_actions(v: CaseView, r: ViewResult) -> None:
    """Accept (the box becomes yours and can be edited above) or reject the finder's
    answer for this view; Predict again to route by the choice."""
    c1, c2 = st.columns(2)
    if r.roi and r.roi_boxes:
        box = [min(b[0] for b in r.roi_boxes), min(b[1] for b in r.roi_boxes),
               max(b[2] for b in r.roi_boxes), max(b[3] for b in r.roi_boxes)]
        c1.button("Accept / edit box", key=f"accept-{v.key}", on_click=_take_proposal,
                  args=(v, box), help="The proposed box becomes this view's box (editable "
                  "above); press Predict to route by it.")
        c2.button("Reject", key=f"reject-{v.key}", on_click=_take_proposal, args=(v, None),
                  help="No ROI for this view; press Predict to route it as without ROI.")
    else:
        c1.button("Draw a box instead", key=f"accept-{v.key}", on_click=_take_proposal,
                  args=(v, [0, 0, 0, 0]), help="The finder found no ROI; draw one yourself.")


def call_text(call: Call | None) -> str:
    """The call beside its numbers (rounded so they never contradict it)."""
    if call is None:
        return "–"
    if call.uninformative:
        return f"**{call.shown.probability}** · :orange[no call: the model is uninformative]"
    colour = "red" if call.shown.malignant else "green"
    return (f":{colour}[**{call.shown.probability}** → {call.shown.word}] · "
            f"threshold {call.shown.threshold}")


def panel(r: ViewResult | None, v: CaseView | None, meta_of, call_of, source: str,
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
        st.image(hang(draw_outline(cam_overlay(base, cam, opacity), mask), r.view, PANEL_HEIGHT,
                      base),
                 width="stretch")
        if cam is not None and float(np.max(cam)) <= 0:
            st.caption("Grad-CAM is empty for this view: nothing in it pushed the model "
                       "towards “malignant”.")
        calls = {g: call_of(r, g) for g in ("roi_aware", "baseline")}
        st.markdown(f"ROI-aware: {call_text(calls['roi_aware'])}  \n"
                    f"Baseline: {call_text(calls['baseline'])}")
        counts = (meta_of(r.cell_roi_aware).get("counts") or {}).get("train")
        st.markdown(routing_sentence(r, v.roi_choice if v else None,
                                     counts if isinstance(counts, dict) else None))
        if v is not None and r.roi_source == "proposed":
            proposal_actions(v, r)
        if v is not None and v.label:
            st.caption(f"Ground truth (dataset): **{v.label}**")
        with st.expander("Details"):
            for grid, cell, call in (("ROI-aware", r.cell_roi_aware, calls["roi_aware"]),
                                     ("Baseline", r.cell_baseline, calls["baseline"])):
                if call is not None:
                    st.caption(f"{grid} model **{cell}**: " + threshold_sentence(
                        meta_of(cell), call.threshold, call.shown.threshold) + ".")
            st.caption(roi_source_text(r))
            if r.fallback:
                st.caption(f"Fallback: {r.fallback_reason}")
            for w in r.warnings:
                if not (r.fallback and w.startswith(ROUTING_PREFIXES)):
                    st.caption(f"⚠️ {w}")


def show_results(results: list[ViewResult], views: list[CaseView], run: RunSummary,
                 point: str, show_ids: bool) -> None:
    metas: dict[str | None, Mapping[str, Any]] = {}

    def meta_of(cell: str | None) -> Mapping[str, Any]:
        """Each serving cell's meta.json, read once per render."""
        if cell not in metas:
            metas[cell] = cell_meta(run, cell)
        return metas[cell]

    def call_of(r: ViewResult, grid: str) -> Call | None:
        return view_call(r, grid, meta_of(getattr(r, f"cell_{grid}")), point)

    st.caption(f"Calls at the operating point: {OPERATING_POINTS[point]}.")
    c1, c2, c3 = st.columns([2, 2, 2])
    keep("cam_source", "ROI-aware")
    source = c1.segmented_control("Grad-CAM of", ["ROI-aware", "Baseline", "Off"],
                                  required=True, key="cam_source")
    keep("cam_opacity", 0.5)
    opacity = c2.slider("Grad-CAM opacity", 0.0, 1.0, step=0.05, key="cam_opacity")
    c3.image(cam_scale_bar(), caption="Grad-CAM, scaled per view: low → high push towards "
             "malignant", width=240)
    by_name = {v.name: v for v in views}
    for row in hanging_order(results):
        cols = st.columns(2, gap="small")
        for col, r in zip(cols, row):
            with col:
                panel(r, by_name.get(r.image) if r else None, meta_of, call_of, source, opacity,
                      show_ids)
    for r in [r for r in results if r.view not in VIEWS]:
        panel(r, by_name.get(r.image), meta_of, call_of, source, opacity, show_ids)
    st.subheader("Per breast")
    rows = breast_summary(results, call_of)
    st.table(pd.DataFrame([{
        "breast": b["breast"], "views": b["views"] or "–",
        **{f"{name}: deciding view": _breast_cell(b, grid)
           for grid, name in (("roi_aware", "ROI-aware"), ("baseline", "baseline"))},
        "ROI-aware call": b["call_roi_aware"].word if b["call_roi_aware"] else "–",
        "baseline call": b["call_baseline"].word if b["call_baseline"] else "–",
    } for b in rows]).set_index("breast"))
    st.caption(BREAST_RULE + " Probabilities are calibrated on the grid's validation images "
               "(temperature and offset), so about 30 % means about 3 in 10 such images were "
               "cancers there.")
    downloads(results, views, run, point, call_of, show_ids)


def _breast_cell(row: dict, grid: str) -> str:
    call: Call | None = row[f"call_{grid}"]
    if call is None:
        return "–"
    return f"{call.shown.probability} {call.shown.relation} {call.shown.threshold} " \
           f"({row[f'view_{grid}']})"


def downloads(results: list[ViewResult], views: list[CaseView], run: RunSummary, point: str,
              call_of, show_ids: bool) -> None:
    """CSV / JSON an auditor can trace: run, weights' SHA-256, date, operating point, ROI."""
    now = datetime.now().astimezone()
    by_name = {v.name: v for v in views}
    roi = {r.image: (by_name[r.image].roi_choice, by_name[r.image].mask)
           for r in results if r.image in by_name}
    record = export_record(results, run, point, call_of, roi,
                           scrub=[v.name for v in views], when=now)
    study = st.session_state.get("study_label", "study") \
        if st.session_state.get("case_source") == "dataset" else "upload"
    if show_ids:
        ids = {v.study_id for v in views if v.study_id}
        study = ids.pop() if len(ids) == 1 else study
        record["study_id"] = study
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Download CSV", pd.DataFrame(export_rows(record)).to_csv(index=False),
                       export_name(study, now, "csv"), "text/csv", on_click="ignore")
    d2.download_button("Download JSON", json.dumps(record, indent=2),
                       export_name(study, now, "json"), "application/json", on_click="ignore")


# ------------------------------------------------------------------ page

run = selected_run()
if run is None:
    st.info("No trained run yet. Build the demo on Home or train a grid first.")
    st.stop()
if run.status != "complete":
    st.warning(f"Run **{run.name}** is {run.status}: some of its models may be missing or "
               "half-trained. Pick a complete run in the sidebar, or resume this one on Train.",
               icon=":material/hourglass_top:")
    if not st.toggle("Review with this run anyway", key=f"incomplete-{run.name}"):
        st.stop()
try:  # every view is rendered as this run's preprocessing spec says, or not at all
    spec = PreprocessParams.from_run(run.info, run.path / RUN_FILE)
except MammoError as err:
    show_error(err)
    st.stop()
architecture_notice([run])
top1, top2, top3 = st.columns([3, 3, 2])
keep("case_source", "dataset" if run.info.get("dataset_path") else "upload")
source_choice = top1.segmented_control(
    "Study", ["dataset", "upload"], required=True,
    format_func={"dataset": "Test study of the run's dataset", "upload": "Upload a study"}.get,
    key="case_source")
point = operating_point_picker(top2)
keep("show_ids", False)
show_ids = top3.toggle("Show identifiers", key="show_ids",
                       help="File names, patient and study ids. Off by default; downloads "
                            "carry them only while this is on.")
if run.synthetic:
    synthetic_notice(images="phantom" if source_choice == "dataset" else "yours")
views = (dataset_views(run, show_ids, spec) if source_choice == "dataset"
         else uploaded_views(spec))
if not views:
    st.stop()

has_finder = (run.info.get("roi_model") or {}).get("status") == "done"
st.subheader("The study")
study_board(views, show_ids, has_finder)
problems = view_problems(views)
for p in problems:
    st.warning(p)
keep("propose", True)
propose = has_finder and st.toggle(
    "ROI finder proposes an ROI for views without one", key="propose",
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
    st.subheader("Results")
    show_results(stored[1], views, run, point, show_ids)
elif stored:
    st.caption("The study, a view or an ROI changed: press Predict again.")
