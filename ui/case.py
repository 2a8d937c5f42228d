"""Case review's study board: each file in its place of the hanging, with its view and
its ROI (none, the finder, the dataset's, a mask file or a drawn box)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.errors import MammoError
from core.grid import VIEWS
from core.review.case import (
    MASK_TYPES,
    ROI_LABELS,
    CaseView,
    choose_roi,
    read_mask_upload,
    roi_options,
    scale_box,
    set_view,
    update_mask,
    view_caption,
    view_conflicts,
)
from core.review.picture import thumbnail
from core.review.study import file_label, hanging_order, unplaced

THUMB_HEIGHT = 420
BOX_TOOL_HEIGHT = 620
PENDING = "roi_pending"  # widget key -> (the browser's old value, the view's)
BOX_COLOUR = "rgb(0,230,255)"  # the ROI outline's cyan (core.review.overlay)
ROI_HELP: dict[str, str] = {
    "finder": "The run's ROI finder decides whether this view has an ROI; its boxes are "
              "shown after Predict, to accept, edit or reject.",
    "none": "No ROI: this view goes to a “without ROI” model.",
    "dataset": "The dataset's annotation routes this view to a “with ROI” model."}


HIDE_UPLOAD_NAMES = """<style>
[data-testid='stFileChipName'] { visibility: hidden; position: relative; }
[data-testid='stFileChipName']::after { content: 'name hidden'; visibility: visible;
                                        position: absolute; left: 0; }
</style>"""


def hide_upload_names(show_ids: bool) -> None:
    """The uploader lists each file by name, and a file name can carry a patient's name:
    while identifiers are hidden its list says "name hidden" (the cards say "file N")."""
    if not show_ids:
        st.html(HIDE_UPLOAD_NAMES)


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
                      line={"color": BOX_COLOUR, "width": 3})
    fig.update_layout(dragmode="select", height=BOX_TOOL_HEIGHT,
                      margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      xaxis={"visible": False}, yaxis={"visible": False})
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="box", key=f"draw-{v.key}",
                            config={"displayModeBar": False})
    boxes = (event or {}).get("selection", {}).get("box", []) if event else []
    if boxes:  # a new drag: its corners go into the fields (drawn below, after this)
        b = boxes[-1]
        drawn = scale_box((min(b["x"]), min(b["y"]), max(b["x"]), max(b["y"])), sx, sy,
                          (h, w))
        if st.session_state.get(f"drawn-{v.key}") != drawn:
            st.session_state[f"drawn-{v.key}"] = drawn
            v.box = drawn
            show_roi(v, overwrite=True, choice=False)
    show_roi(v)
    c = st.columns(4)
    values = [c[i].number_input(lab, 0, (w, h, w, h)[i], key=name)
              for i, (lab, name) in enumerate(zip(("x min", "y min", "x max", "y max"),
                                                  corner_keys(v)))]
    if values[2] > values[0] and values[3] > values[1]:
        v.box = tuple(values)
        st.caption(f"Box {values[2] - values[0]} × {values[3] - values[1]} px (image pixels)")
    else:
        v.box = None
        st.caption("Drag a box on the image, or type its corners in image pixels.")


def corner_keys(v: CaseView) -> list[str]:
    """The widget keys of a view's box corners (x min, y min, x max, y max)."""
    return [f"{c}-{v.key}" for c in ("x0", "y0", "x1", "y1")]


def show_roi(v: CaseView, overwrite: bool = False, choice: bool = True) -> None:
    """Put the view's ROI choice and box into its widgets' state.

    The view, not the widget, holds the ROI: a widget keyed in session state
    shows what is stored under its key, and the browser sends its own value
    back on the next rerun unless the key is assigned (a ``default`` or
    ``value`` argument is not pushed to a widget already on the page).  So an
    accept, a reject or a drag writes here (``overwrite``), and a widget missing
    from the state (after a page switch) is given the view's value.  Until the
    page has been drawn with the new values, a rerun that brings the browser's
    old value back (Predict pressed while the page was still redrawing) is
    answered with the new one again (:func:`hold_roi`).  ``choice`` False: the box only
    (a drag, drawn after the ROI control).
    """
    state = st.session_state
    pending = state.setdefault(PENDING, {})
    for name, value in list(zip([f"roi-{v.key}", *corner_keys(v)],
                                [v.roi_choice, *(v.box or (0, 0, 0, 0))]))[0 if choice else 1:]:
        if overwrite and state.get(name) != value:
            pending[name] = (state.get(name), value)
        if overwrite or name not in state:
            state[name] = value


def hold_roi() -> None:
    """Before the study board: undo what a rerun started before the browser had the
    values :func:`show_roi` wrote would bring back (the board, once drawn, has sent
    them: :func:`study_board` then forgets them)."""
    state = st.session_state
    for name, (old, new) in state.get(PENDING, {}).items():
        if state.get(name) == old:
            state[name] = new


def roi_editor(v: CaseView, has_finder: bool, title: str) -> None:
    options = roi_options(v, has_finder)
    show_roi(v, overwrite=st.session_state.get(f"roi-{v.key}") not in options)
    roi = st.segmented_control("ROI", options, format_func=ROI_LABELS.get, required=True,
                               key=f"roi-{v.key}")
    choose_roi(v, roi)
    if roi in ROI_HELP:
        st.caption(ROI_HELP[roi])
    elif roi == "mask":
        f = st.file_uploader("Mask (binary image, same size as the mammogram)",
                             type=list(MASK_TYPES), key=f"mask-{v.key}")
        if f is not None:
            try:
                v.mask_file = read_mask_upload(f.name, f.getvalue(), v.shape)
            except MammoError as err:
                v.mask_file = None
                st.error(f"Mask for {title} refused: {err.problem}", icon=":material/error:")
        if v.mask_file is None:
            st.caption(f"The mask must be {v.shape[1]} × {v.shape[0]} px, the mammogram's own "
                       "size; or draw a box instead.")
    else:
        box_tool(v)
    update_mask(v)


def view_card(v: CaseView | None, slot: str | None, show_ids: bool, index: int,
              has_finder: bool) -> None:
    """One file in its place of the hanging: the image first, then its view and ROI."""
    with st.container(border=True, key=f"card-{slot or v.key}"):
        if v is None:
            st.caption(f"{slot} · not in this study")
            return
        title = file_label(index, v.name, show_ids)
        if v.error:
            st.error(v.error if show_ids else v.error.replace(v.name, title),
                     icon=":material/error:")
            return
        if v.roi_choice != "box":
            st.image(thumbnail(v, THUMB_HEIGHT), width="stretch")
        st.selectbox(f"View of {title}", VIEWS,
                     index=VIEWS.index(v.view) if v.view in VIEWS else None,
                     placeholder="choose the view", key=f"view-{v.key}")
        st.caption(view_caption(v))
        for conflict in view_conflicts(v):
            st.warning(conflict[0].upper() + conflict[1:], icon=":material/warning:")
        roi_editor(v, has_finder, title)
        for w in v.warnings:
            st.caption(f"⚠️ {w}")


def study_board(views: list[CaseView], show_ids: bool, has_finder: bool) -> None:
    """The views as the four-view hanging (RCC LCC / RMLO LMLO), unknown last.

    A view chosen in a card's box is taken before the hanging is laid out, so the
    file moves to its place on the same run rather than one run later."""
    hold_roi()
    for v in views:
        if f"view-{v.key}" in st.session_state:
            set_view(v, st.session_state[f"view-{v.key}"])
    index = {v.key: i for i, v in enumerate(views)}
    grid = hanging_order([v for v in views if v.error is None])
    waiting, broken = unplaced(views)
    for row, slots in zip(grid, (("RCC", "LCC"), ("RMLO", "LMLO"))):
        if all(v is None for v in row) and len(views) < 4:
            continue
        for col, v, slot in zip(st.columns(2, gap="small"), row, slots):
            with col:
                view_card(v, slot, show_ids, index.get(v.key, 0) if v else 0, has_finder)
    for title, group in (("**Not yet placed** (choose each file's view)", waiting),
                         ("**Could not be read**", broken)):
        if group:
            st.markdown(title)
            cols = st.columns(2, gap="small")
            for k, v in enumerate(group):
                with cols[k % 2]:
                    view_card(v, None, show_ids, index[v.key], has_finder)
    st.session_state.pop(PENDING, None)  # drawn: the browser has the view's values
