"""Case review: see the study first, set views and ROIs on it, then read both grids' calls
with Grad-CAM, one stated operating point, and why each view went where it went."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.datasets.run_data import run_options
from core.errors import MammoError
from core.pixels.preprocess import PreprocessParams
from core.predict import Predictor
from core.review.case import UPLOAD_TYPES, CaseView
from core.review.outputs import phantom_study
from core.review.report import is_demonstration
from core.review.study import (
    MAX_VIEWS,
    StudyResults,
    UploadedStudy,
    hide_names,
    identity_problem,
    study_choices,
    study_label,
    study_views,
    too_many,
    unreadable,
    view_problems,
)
from core.runfolder.layout import RUN_FILE, RunSummary
from ui.case import hide_upload_names, study_board
from ui.case_results import show_results
from ui.common import (
    architecture_notice,
    ensure_app_navigation,
    keep,
    operating_point_picker,
    run_dataset_table,
    selected_run,
    show_error,
    synthetic_notice,
)
from ui.pacs import pacs_views

UPLOADS = "upload_study"  # an UploadedStudy: the study outlives the uploader
RESULTS = "case_results"  # a StudyResults: each view's last result and what it was for

ensure_app_navigation()

st.title("Case review")


@st.cache_resource(show_spinner=False, max_entries=2)
def predictor(run_path: str, run_mtime: float, device: str = "auto") -> Predictor:
    """Models of a run, loaded once per (run folder, run.json version)."""
    return Predictor(run_path, device)


# ------------------------------------------------------------------ the study

def uploaded_views(spec: PreprocessParams, show_ids: bool) -> list[CaseView]:
    study: UploadedStudy = st.session_state.setdefault(UPLOADS, UploadedStudy())
    hide_upload_names(show_ids)
    key = study.uploader_key
    st.file_uploader("Mammograms of one study (up to four views: DICOM or images)",
                     type=list(UPLOAD_TYPES), accept_multiple_files=True, key=key,
                     on_change=lambda: study.sync(st.session_state.get(key) or [], spec))
    files = st.session_state.get(key) or []
    if not files:
        study.detach()
    study.respec(files, spec)  # another run's spec: read again from the uploader
    views = study.study()
    for line in study.repeated(show_ids):
        st.info(line, icon=":material/content_copy:")
    if views and st.button("Clear study", icon=":material/delete:",
                           help="Forget these files and start a new study."):
        study.clear()
        st.session_state.pop(key, None)
        st.session_state.pop(RESULTS, None)
        st.rerun()
    if (problem := too_many(views)) is not None:
        st.error(problem)
    return views[:MAX_VIEWS]


def dataset_views(run: RunSummary, show_ids: bool, spec: PreprocessParams) -> list[CaseView]:
    path = run.info.get("dataset_path")
    if not path or not Path(path).exists():
        st.info("This run's dataset is not on this computer; upload a study instead.")
        return []
    try:
        df = run_dataset_table(run)
        read_as = run_options(run.info)
    except MammoError as err:
        show_error(err)
        return []
    if not read_as.recorded:
        st.caption(read_as.sentence())
    studies = study_choices(df)
    if not studies:
        st.info("The run's dataset has no test split.")
        return []
    pick = f"study_pick-{run.name}"  # a new run gets its own picker
    keep(pick, 0)
    if not 0 <= st.session_state[pick] < len(studies):
        st.session_state[pick] = 0
    i = st.selectbox(f"Test study ({len(studies)} in the run's held-out split)",
                     range(len(studies)), key=pick,
                     format_func=lambda k: study_label(studies[k], k, show_ids))
    key = ("study", str(path), read_as.options, studies[i]["study_id"], spec)
    if st.session_state.get("study_key") != key:
        st.session_state["study_key"] = key
        st.session_state["study_views"] = study_views(df, studies[i]["study_id"], spec)
        st.session_state["study_label"] = f"test-study-{i + 1}"
    return st.session_state["study_views"]


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
top1, top2, top3 = st.columns([4, 3.4, 1.9])
keep("case_source", "dataset" if run.info.get("dataset_path") else "upload")
SOURCES = {"dataset": "Test study of the run's dataset", "upload": "Upload a study",
           "pacs": "PACS"}
source_choice = top1.segmented_control("Study", list(SOURCES), required=True,
                                       format_func=SOURCES.get, key="case_source")
point = operating_point_picker(top2)
keep("show_ids", False)
show_ids = top3.toggle("Show identifiers", key="show_ids",
                       help="File names, patient and study ids. Off by default; downloads "
                            "carry them only while this is on.")
notice = st.empty()  # drawn once the study says what its images are
if source_choice == "dataset":
    views = dataset_views(run, show_ids, spec)
elif source_choice == "pacs":
    views = pacs_views(run, spec, show_ids)
else:
    views = uploaded_views(spec, show_ids)
# the run's own dataset is synthetic iff the run is; a PACS study iff its DICOMs say so
images_synthetic = source_choice == "dataset" or (source_choice == "pacs"
                                                  and phantom_study(views))
if run.synthetic:
    with notice.container():
        synthetic_notice(images="phantom" if images_synthetic else "yours")
if not views:
    st.stop()

has_finder = (run.info.get("roi_model") or {}).get("status") == "done"
st.subheader("The study")
study_board(views, show_ids, has_finder)
problems = view_problems(views, show_ids)
for p in problems:
    st.warning(p)
if (mixed := identity_problem(views, show_ids)) is not None:
    st.error(mixed, icon=":material/group:")
    confirm = "one-study-" + "|".join(sorted(v.key for v in views))  # asked again for new files
    if not st.checkbox("These files are one study", key=confirm,
                       help="Tick only if you know these files are one patient's one study "
                            "(e.g. re-identified copies); otherwise remove the other files."):
        problems.append(mixed)
propose = has_finder and st.toggle(  # kept while hidden: an empty upload must not reset it
    "ROI finder proposes an ROI for views without one", True, key="propose",
    persist_state="session",
    help="The run has an ROI finder. On: a view without a mask or box is routed by the "
         "finder's answer. Off: it routes as without ROI. A mask or box you give always wins.")
cache: StudyResults = st.session_state.setdefault(RESULTS, StudyResults())
if st.button("Predict", type="primary", disabled=bool(problems)):
    try:
        model = predictor(str(run.path), (run.path / RUN_FILE).stat().st_mtime)
        with st.spinner("Routing and predicting, with Grad-CAM …"):
            cache.predict(model, run.path, views, propose)
        st.caption(cache.summary())
    except MammoError as err:  # may name an uploaded file
        st.error(hide_names(str(err), views, show_ids), icon=":material/error:")
fresh = cache.current(run.path, views, propose)
stale = cache.stale(run.path, views, propose)
if fresh:
    if stale:
        st.caption("A view or an ROI changed: press Predict to read "
                   + ", ".join(v.view or "the unplaced file" for v in stale) + " again.")
    st.subheader("Results")
    show_results(fresh + unreadable(views), views, run, point, show_ids,
                 is_demonstration(run.synthetic, images_synthetic), stale, images_synthetic)
