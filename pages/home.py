"""Home: what the app is, a one-click demo when nothing is trained, the state of things."""
from __future__ import annotations

import os

import streamlit as st

from core.errors import MammoError
from core.runfolder.jobs import current_job, demo_args, last_job, log_tail, start_job
from core.runfolder.layout import recommended_run
from ui.common import architecture_notice, ensure_app_navigation, run_title, runs, synthetic_notice
from ui.progress import render_progress

TINY_ENV = "MAMMOROUTE_DEMO"  # "tiny": the small demo (browser test, a quick look)
READY_KEY = "home_demo_ready"

ensure_app_navigation()

st.title("MammoRoute")
st.caption("ROI-aware benign / malignant classification of four-view mammography studies")
st.markdown(
    "The **baseline** has one classifier per view (RCC, LCC, RMLO, LMLO) and reads every "
    "image of that view alike.  \n"
    "The **ROI-aware** grid has two per view, one for images with a marked lesion (an ROI: a "
    "mask or a box) and one for images without, and sends each image to the one that fits; "
    "the ROI only chooses the model, its pixels are not an input.  \n"
    "The **ROI finder** is a separate model that proposes an ROI for an image that has none, "
    "which you accept, edit or reject in Case review.")


def _start_demo() -> None:
    try:
        start_job(demo_args(tiny=os.environ.get(TINY_ENV, "").lower() == "tiny"), "demo")
    except MammoError as err:
        st.session_state["home_error"] = str(err)


def ready_banner(complete: list) -> None:
    """The recommended complete run (:func:`core.runfolder.layout.recommended_run`) and how to read it."""
    best = recommended_run(complete)
    st.success(f"Ready for case review: **{best.name}** ({run_title(best)}).")
    architecture_notice([best])
    st.page_link("pages/case_review.py", label="Open case review", icon=":material/radiology:")


@st.fragment(run_every=2)
def demo_progress() -> None:
    """Read from disk every 2 s: any reload or second tab sees the same state."""
    job = current_job()
    found = [r for r in runs() if r.name.startswith("demo-")]
    ready = [r for r in found if r.status == "complete"]
    if ready:
        ready_banner(ready)
        if not st.session_state.get(READY_KEY):
            st.session_state[READY_KEY] = True
            st.rerun(scope="app")  # the sidebar learns of the new run
    if job is None:
        st.rerun(scope="app")  # finished or stopped: the page shows the outcome
    st.info(f"Building the demo in the background (started {job.started[11:19]} UTC). "
            "You can leave this page; the work continues.", icon=":material/hourglass_top:")
    if not any(r.status == "running" for r in found) and not ready:
        st.caption("Writing the synthetic phantom dataset and preprocessing it …")
    for run in found:
        if run.status == "running":
            st.markdown(f"**{run.name}** — {run_title(run)}")
            render_progress(run, compact=True)
    tail = log_tail(job, 1)
    if tail:
        st.caption(tail)


found = runs()
job = current_job()
if not found and job is None:
    st.markdown(
        "MammoRoute trains both grids and lets you read their predictions with Grad-CAM.  \n"
        "Every comparison carries honest references (ROI presence alone, the majority class) "
        "and 95 % confidence intervals.  \n"
        "No data is needed to start: the demo builds a small synthetic (phantom) dataset and "
        "trains tiny models on this computer's CPU, the first within a few minutes.")
    st.button("Build demo data and train demo models", type="primary", on_click=_start_demo)
    if st.session_state.get("home_error"):
        st.error(st.session_state.pop("home_error"))
elif job is not None and job.kind == "demo":
    synthetic_notice("caption")
    demo_progress()
elif not found:
    done = last_job()
    st.error(f"The {done.kind if done else 'demo'} job stopped before any run was written "
             f"(exit status {done.returncode if done else '?'}). Last output:")
    st.code((log_tail(done, 15) if done else "") or "(no output)")
    st.button("Try again", on_click=_start_demo)
else:
    complete = [r for r in found if r.status == "complete"]
    if complete:
        ready_banner(complete)
    c1, c2, c3 = st.columns(3)
    c1.metric("Runs", len(found))
    c2.metric("Complete", len(complete))
    c3.metric("Training now", job.name if job else "–")
    if any(r.synthetic for r in found):
        synthetic_notice("caption")
    st.dataframe(
        [{"run": r.name, "status": r.status, "dataset": r.info.get("dataset"),
          "arch": r.info.get("arch"), "size": r.info.get("img_size"),
          "epochs": r.info.get("epochs"), "synthetic": "yes" if r.synthetic else "no",
          "started": str(r.info.get("started", ""))[:16].replace("T", " ")} for r in found],
        hide_index=True)
    cols = st.columns(3)
    cols[0].page_link("pages/compare.py", label="Compare baseline vs ROI-aware", icon=":material/bar_chart:")
    cols[1].page_link("pages/train.py", label="Train a grid", icon=":material/model_training:")
    cols[2].page_link("pages/data.py", label="Look at the data", icon=":material/photo_library:")
    if job is not None:
        st.caption(f"A {job.kind} job is running ({job.name}); see the Train page.")
