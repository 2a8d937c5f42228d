"""Case review's results: per view the overlay, both grids' calls and why the view went
where it went; per breast the deciding view; the downloads, and storing into the PACS."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from core.grid import VIEWS, is_route_warning
from core.phantom import synthetic_notice_text
from core.predict import ViewResult
from core.review.case import CaseView, proposal_box, take_proposal
from core.review.export import study_downloads
from core.review.outputs import phantom_study
from core.review.overlay import cam_scale_bar
from core.review.picture import CAM_SOURCES, result_picture
from core.review.readout import calibration_sentence, threshold_sentence
from core.review.report import (
    BREAST_RULE,
    DEMONSTRATION_TEXT,
    OPERATING_POINTS,
    Call,
    StudyCalls,
    breast_table,
    measured_calibration,
    routing_sentence,
)
from core.review.study import file_label, hanging_order, hide_names
from core.runfolder.layout import RunSummary
from ui.case import show_roi
from ui.case_outputs import report_button, store_button
from ui.common import keep
from ui.roi_view import roi_source_text

PANEL_HEIGHT = 440


def call_text(call: Call | None) -> str:
    """The call beside its numbers (rounded so they never contradict it), as markdown."""
    if call is None:
        return "–"
    if call.demonstration:
        return f"**{call.shown.probability}** · :orange[no call: {DEMONSTRATION_TEXT}]"
    if call.uninformative:
        return f"**{call.shown.probability}** · :orange[no call: the model is uninformative]"
    colour = "red" if call.shown.malignant else "green"
    return (f":{colour}[**{call.shown.probability}** → {call.shown.word}] · "
            f"threshold {call.shown.threshold}")


def proposal_actions(v: CaseView, r: ViewResult) -> None:
    """Accept (the box becomes yours and can be edited above) or reject the finder's
    answer for this view; Predict again to route by the choice."""
    def take(box: list[float] | None) -> None:
        take_proposal(v, box)
        show_roi(v, overwrite=True)

    c1, c2 = st.columns(2)
    if (box := proposal_box(r)) is not None:
        c1.button("Accept / edit box", key=f"accept-{v.key}", on_click=take, args=(box,),
                  help="The proposed box becomes this view's box (editable above); press "
                       "Predict to route by it.")
        c2.button("Reject", key=f"reject-{v.key}", on_click=take, args=(None,),
                  help="No ROI for this view; press Predict to route it as without ROI.")
    else:
        c1.button("Draw a box instead", key=f"accept-{v.key}", on_click=take,
                  args=([0, 0, 0, 0],), help="The finder found no ROI; draw one yourself.")


def panel(r: ViewResult | None, v: CaseView | None, calls: StudyCalls, cam_of: str | None,
          opacity: float, hide: Callable[[str], str], changed: bool = False, title: str = "") -> None:
    """One view's result; every text that may name a file goes through ``hide``; a view
    changed since its result (``changed``) waits for Predict; ``title`` names its file."""
    with st.container(border=True, key=f"result-{r.view}" if r and r.view in VIEWS else None):
        if r is None:
            st.caption("—  not in this study")
            return
        st.markdown(f"**{r.view or '?'}**" + (f" · {title}" if v and title else ""))
        if changed:
            st.info("Its view or ROI changed: press Predict to read it again.",
                    icon=":material/refresh:")
            return
        if r.error:
            st.error(hide(r.error), icon=":material/error:")
            return
        picture, empty = result_picture(r, v, cam_of, opacity, PANEL_HEIGHT)
        st.image(picture, width="stretch",
                 caption=f"Grad-CAM: {r.cam_method}" if cam_of and r.cam_method else None)
        if empty:
            st.caption("Grad-CAM is empty for this view: nothing in it pushed the model "
                       "towards “malignant”.")
        st.markdown(f"ROI-aware: {call_text(calls(r, 'roi_aware'))}  \n"
                    f"Baseline: {call_text(calls(r, 'baseline'))}")
        st.markdown(routing_sentence(r, v.roi_choice if v else None, calls.train_counts(r)))
        if v is not None and r.roi_source == "proposed":
            proposal_actions(v, r)
        if v is not None and v.label:
            st.caption(f"Ground truth (dataset): **{v.label}**")
        with st.expander("Details"):
            for grid, name in (("roi_aware", "ROI-aware"), ("baseline", "Baseline")):
                if (call := calls(r, grid)) is not None:
                    cell = getattr(r, f"cell_{grid}")
                    st.caption(f"{name} model **{cell}**: " + threshold_sentence(
                        calls.meta(cell), call.threshold, call.shown.threshold) + ".")
            st.caption(roi_source_text(r))
            if r.fallback:
                st.caption(hide(f"Fallback: {r.fallback_reason}"))
            for w in r.warnings:
                if not (r.fallback and is_route_warning(w)):
                    st.caption(hide(f"⚠️ {w}"))


def show_results(results: list[ViewResult], views: list[CaseView], run: RunSummary,
                 point: str, show_ids: bool, demonstration: bool = False,
                 changed: Sequence[CaseView] = (), images_synthetic: bool = False) -> None:
    """The results in the hanging; ``demonstration`` (:func:`core.review.report.is_demonstration`)
    shows every number without a call; ``changed`` views hold their place until Predict, and
    the breasts, downloads and stored objects are of the predicted views only;
    ``images_synthetic``: the study is the phantom's (the report's notice says so)."""
    calls = StudyCalls(run, point, demonstration)
    st.caption(f"Calls at the operating point: {OPERATING_POINTS[point]}.")
    c1, c2, c3 = st.columns([2, 2, 2])
    keep("cam_source", "ROI-aware")
    source = c1.segmented_control("Grad-CAM of", list(CAM_SOURCES), required=True,
                                  key="cam_source")
    keep("cam_opacity", 0.5)
    opacity = c2.slider("Grad-CAM opacity", 0.0, 1.0, step=0.05, key="cam_opacity")
    c3.image(cam_scale_bar(), caption="Grad-CAM, scaled per view: low → high push towards "
             "malignant", width=240)
    by_key = {v.key: v for v in views}
    titles = {v.key: file_label(i, v.name, show_ids) for i, v in enumerate(views)}

    def hide(text: str) -> str:
        return hide_names(text, views, show_ids)

    waiting = [ViewResult(image=v.name, view=v.view, key=v.key) for v in changed]
    held = {id(r) for r in waiting}
    for row in hanging_order(results + waiting):
        for col, r in zip(st.columns(2, gap="small"), row):
            with col:
                panel(r, by_key.get(r.key) if r else None, calls, CAM_SOURCES[source],
                      opacity, hide, changed=id(r) in held, title=titles.get(r.key, "") if r else "")
    for r in [r for r in results + waiting if r.view not in VIEWS]:
        panel(r, by_key.get(r.key), calls, CAM_SOURCES[source], opacity, hide,
              changed=id(r) in held, title=titles.get(r.key, ""))
    st.subheader("Per breast")
    st.table(pd.DataFrame(breast_table(results, calls)).set_index("breast"))
    st.caption(f"{BREAST_RULE} Probabilities are calibrated on validation images (a temperature "
               f"and an offset per grid, per model where it has enough). "
               f"{calibration_sentence(measured_calibration(run))}")
    study = st.session_state.get("study_label", "study") \
        if st.session_state.get("case_source") == "dataset" else "upload"
    csv, js = study_downloads(results, views, run, point, calls, study, show_ids)
    d1, d2, d3, d4 = st.columns([1, 1, 1.4, 1.6])
    d1.download_button("Download CSV", csv.text, csv.name, csv.mime, on_click="ignore")
    d2.download_button("Download JSON", js.text, js.name, js.mime, on_click="ignore")
    phantom = images_synthetic or phantom_study(views)
    cam_of, notice = CAM_SOURCES[source], synthetic_notice_text(run.synthetic, phantom)
    report_button(d3, results, views, run, point, calls, cam_of=cam_of, opacity=opacity,
                  notice=notice, study=study, show_ids=show_ids)
    store_button(d4, results, views, run, calls, cam_of=cam_of, opacity=opacity,
                 synthetic=run.synthetic or phantom)
