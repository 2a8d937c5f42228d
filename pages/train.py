"""Train: choose a dataset and the grid options, start a background run, watch it, cancel it."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import streamlit as st

from core.errors import MammoError, TrainingError
from core.jobs import cancel_job, current_job, last_job, log_tail, start_job, train_args
from core.models import DEMO_ARCHS, PAPER_ARCHS
from core.runs import checkpoints_root, read_run
from ui.common import (data_root, ensure_app_navigation, resolve_dataset_path, selected_run,
                       show_error, synthetic_notice)
from ui.progress import render_progress

ARCH_LABELS: dict[str, str] = {
    "resnet10t": "ResNet10-T (small CNN, the CPU demo's)",
    "convnextv2_atto": "ConvNeXtV2-atto (tiny, CPU demo)",
    "swin_micro": "Swin micro (tiny, CPU demo)",
    "swin": "Swin-T (paper)",
    "convnextv2": "ConvNeXtV2-T (paper)",
}
MODE_LABELS: dict[str, str] = {"both": "Both", "baseline": "Baseline", "roi": "ROI-aware"}
SIZES: tuple[int, ...] = (64, 96, 128, 192, 224, 256, 384)
OTHER = "Other folder or manifest…"
WATCH_KEY = "train_watch"
NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")

ensure_app_navigation()

st.title("Train")
st.caption("One grid per run: the baseline (one model per view) and/or the ROI-aware grid "
           "(with / without ROI × view). Training runs in the background, one job at a time.")


def builtin_datasets() -> list[Path]:
    root = data_root()
    return sorted(p for p in root.glob("phantom-*") if p.is_dir()) if root.is_dir() else []


def start(dataset: Path, arch: str, size: int, epochs: int, mode: str, balanced: bool,
          device: str, name: str) -> None:
    out = checkpoints_root() / name
    try:
        if not NAME_OK.match(name):
            raise TrainingError("run name: letters, digits, '.', '_' and '-' only (max 80)")
        if out.exists():
            raise TrainingError("a run of this name exists; choose another name", out)
        start_job(train_args(dataset, arch, size, epochs, mode, out, balanced, device),
                  "train", run_dir=out)
    except MammoError as err:
        st.session_state["train_error"] = str(err)
        return
    st.session_state[WATCH_KEY] = name


left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader("Options")
    builtin = builtin_datasets()
    choice = st.selectbox("Dataset", [str(p.name) for p in builtin] + [OTHER],
                          help="Built-in phantoms are synthetic. Other datasets must lie under "
                               f"the data folder ({data_root()}).")
    dataset: Path | None = data_root() / choice if choice != OTHER else None
    if choice == OTHER:
        typed = st.text_input("Folder or manifest CSV (relative to the data folder)",
                              placeholder="vindr-mammo or my-study/manifest.csv")
        if typed:
            try:
                dataset = resolve_dataset_path(typed)
            except MammoError as err:
                show_error(err)
    elif choice.startswith("phantom-"):
        synthetic_notice("caption")
    arch = st.selectbox("Architecture", list(DEMO_ARCHS) + list(PAPER_ARCHS),
                        format_func=lambda a: ARCH_LABELS.get(a, a))
    c1, c2 = st.columns(2)
    size = c1.selectbox("Image size (px)", SIZES,
                        index=SIZES.index(96 if arch in DEMO_ARCHS else 384))
    epochs = int(c2.number_input("Epochs", 1, 300, 8 if arch in DEMO_ARCHS else 100))
    mode = st.segmented_control("Grids", list(MODE_LABELS), default="both", required=True,
                                format_func=MODE_LABELS.get,
                                help="Baseline: 4 models, one per view. ROI-aware: 8 models, "
                                     "with / without ROI × view.")
    c3, c4 = st.columns(2)
    balanced = c3.checkbox("Class-balanced loss", help="Weights malignant images by "
                           "n_benign / n_malignant, against majority-class collapse.")
    device = c4.selectbox("Device", ("auto", "cpu", "cuda"))
    stamp = datetime.now().strftime("%m%d-%H%M")
    default_name = f"{(dataset.stem if dataset else 'run')}-{arch}-{size}-{stamp}"
    name = st.text_input("Run name", value=default_name)
    st.button("Start training", type="primary", disabled=dataset is None,
              on_click=start, args=(dataset, arch, size, epochs, mode, balanced, device, name))
    if st.session_state.get("train_error"):
        st.error(st.session_state.pop("train_error"), icon=":material/error:")


@st.fragment(run_every=2)
def monitor() -> None:
    job = current_job()
    watched = None
    if job is not None and job.run_dir:
        watched = Path(job.run_dir)
    elif st.session_state.get(WATCH_KEY):
        watched = checkpoints_root() / st.session_state[WATCH_KEY]
    elif selected_run() is not None:
        watched = selected_run().path
    if job is not None:
        c1, c2 = st.columns([3, 1])
        c1.info(f"{job.kind.capitalize()} job running: **{job.name}** (since "
                f"{job.started[11:19]} UTC)", icon=":material/hourglass_top:")
        if c2.button("Cancel", type="secondary", width="stretch"):
            with st.spinner("Stopping …"):
                cancel_job()
            st.rerun()
    if watched is None:
        st.caption("No run to show yet.")
        return
    try:
        run = read_run(watched)
    except MammoError:
        if job is not None:
            st.caption(f"{watched.name}: reading the dataset and preprocessing …")
            st.code(log_tail(job, 5) or "(starting)")
        else:
            done = last_job()
            if done is not None and done.run_dir and Path(done.run_dir) == watched:
                st.error(f"The job ended before the run started (exit status {done.returncode}):")
                st.code(log_tail(done, 12) or "(no output)")
        return
    st.markdown(f"**{run.name}**")
    if run.synthetic:
        synthetic_notice("caption")
    if run.status == "running" and (job is None or job.run_dir != str(watched)):
        st.warning("run.json says running, but no process is working on it (it was killed); "
                   "start it again with the same options and --resume from the command line.")
    render_progress(run)


with right:
    st.subheader("Progress")
    monitor()
