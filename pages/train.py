"""Train: choose a dataset and every option of the command line, start, watch, cancel, resume."""
from __future__ import annotations

import re
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

from core.cli.scale_args import executor_args
from core.datasets import detect_layout
from core.errors import MammoError, TrainingError
from core.models import DEMO_ARCHS, PAPER_ARCHS, available_devices
from core.phantom import is_synthetic
from core.runfolder.jobs import Job, cancel_job, current_job, last_job, log_tail, resume_args, start_job, train_args
from core.runfolder.layout import RunSummary, checkpoints_root, read_progress, read_run
from core.runfolder.progress import cell_count, parts
from ui.common import (
    data_root,
    ensure_app_navigation,
    resolve_dataset_path,
    selected_run,
    show_error,
    synthetic_notice,
)
from ui.progress import render_progress

ARCH_LABELS: dict[str, str] = {
    "resnet10t": "ResNet10-T (small CNN, the CPU demo's)",
    "convnextv2_atto": "ConvNeXtV2-atto (tiny, CPU demo)",
    "swin_micro": "Swin micro (tiny, CPU demo)",
    "swin": "Swin-T (paper)",
    "convnextv2": "ConvNeXtV2-T (paper)",
}
MODE_LABELS: dict[str, str] = {"both": "Both", "baseline": "Baseline", "roi": "ROI-aware"}
CDD_LABELS: dict[str, str] = {"DM": "Low energy (DM, the paper's)", "CESM": "Subtracted (CESM)"}
SIZES: tuple[int, ...] = (64, 96, 128, 192, 224, 256, 384)
CV_FOLDS: tuple[int, ...] = (0, 3, 5, 10)
OTHER = "Other folder or manifest…"
WEIGHTS_DIR = "weights"  # under the data root: local .safetensors backbones
NO_WEIGHTS = ""
HUB = "hub"
WATCH_KEY = "train_watch"
NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
# The README's reproduction recipe for the paper's architectures; the CPU demo's for the rest.
PAPER_DEFAULTS: dict[str, Any] = {"img_size": 384, "epochs": 100, "lr": 1e-4, "batch_size": 64}
DEMO_DEFAULTS: dict[str, Any] = {"img_size": 128, "epochs": 8, "lr": 1e-3, "batch_size": 16}
FIXED_DEFAULTS: dict[str, Any] = {
    "mode": "both", "balanced": False, "device": "auto", "weight_decay": 0.01, "seed": 0,
    "split_seed": 0, "cv": 0, "compile": False, "warm_start": 0, "augment": True,
    "clahe_clip": 2.0, "crop": True, "roi_model": False, "roi_size": 96, "roi_epochs": 20,
    "cdd_type": "DM"}
# Where the run executes (the command's executor flags, not TrainConfig fields).
WHERE_LABELS: dict[str, str] = {"local": "This machine", "ray": "Ray cluster"}
EXECUTOR_DEFAULTS: dict[str, Any] = {"executor": "local", "ray_address": "",
                                     "gpus_per_cell": None, "cpus_per_cell": None}

ensure_app_navigation()

st.title("Train")
st.caption("One grid per run: the baseline (one model per view) and/or the ROI-aware grid "
           "(with / without ROI × view). Training runs in the background, one job at a time.")


def builtin_datasets() -> list[Path]:
    root = data_root()
    return sorted(p for p in root.glob("phantom-*") if p.is_dir()) if root.is_dir() else []


def weight_files() -> list[Path]:
    """Local backbone weights the page offers: ``<data root>/weights/**/*.safetensors``."""
    folder = data_root() / WEIGHTS_DIR
    return sorted(folder.rglob("*.safetensors")) if folder.is_dir() else []


def arch_defaults(arch: str, weights: list[Path]) -> dict[str, Any]:
    """The recipe's options for ``arch``: the paper's starts from a weights file whose name
    names its family ("swin", "convnext"; another family's would not load)."""
    if arch in PAPER_ARCHS:
        family = arch.removesuffix("v2")
        named = [w for w in weights if family in w.name.lower()]
        return {**PAPER_DEFAULTS, "pretrained": str(named[0]) if named else NO_WEIGHTS}
    return {**DEMO_DEFAULTS, "pretrained": NO_WEIGHTS}


def apply_arch_defaults() -> None:
    st.session_state.update(arch_defaults(st.session_state["arch"], weight_files()))


def init_state(weights: list[Path]) -> None:
    """Widget values live in session state, so changing the architecture can reset them."""
    if "arch" not in st.session_state:
        st.session_state["arch"] = DEMO_ARCHS[0]
    for key, value in {**FIXED_DEFAULTS, **EXECUTOR_DEFAULTS,
                       **arch_defaults(st.session_state["arch"], weights)}.items():
        st.session_state.setdefault(key, value)
    offered = {"device": available_devices(), "img_size": SIZES, "cv": CV_FOLDS,
               "pretrained": (NO_WEIGHTS, HUB, *map(str, weights))}
    for key, choices in offered.items():  # a value no longer offered (a GPU or file gone)
        if st.session_state[key] not in choices:
            st.session_state[key] = choices[0]


def is_cddcesm(dataset: Path | None) -> bool:
    try:
        return dataset is not None and detect_layout(dataset)[0].name == "cdd-cesm"
    except MammoError:
        return False


def weights_label(value: str) -> str:
    if value == NO_WEIGHTS:
        return "None: train from scratch"
    if value == HUB:
        return "timm's ImageNet weights (downloads them: needs a network)"
    return str(Path(value).relative_to(data_root() / WEIGHTS_DIR))


def start(name: str, command: list[str]) -> None:
    """Start ``command`` (the one the page shows) as the background job training ``name``."""
    out = checkpoints_root() / name
    try:
        if not NAME_OK.match(name):
            raise TrainingError("run name: letters, digits, '.', '_' and '-' only (max 80)")
        if out.exists():
            raise TrainingError("a run of this name exists; choose another name", out)
        start_job(command, "train", run_dir=out)
    except MammoError as err:
        st.session_state["train_error"] = str(err)
        return
    st.session_state[WATCH_KEY] = name


def resume(run: RunSummary) -> None:
    """Continue ``run`` with the options its run.json records (``--resume``)."""
    try:
        start_job(resume_args(run.info, run.path), "train", run_dir=run.path)
    except MammoError as err:
        st.session_state["resume_error"] = str(err)
        return
    st.session_state[WATCH_KEY] = run.name


def dataset_picker() -> Path | None:
    builtin = builtin_datasets()
    choice = st.selectbox("Dataset", [str(p.name) for p in builtin] + [OTHER],
                          help="Built-in phantoms are synthetic. Other datasets must lie under "
                               f"the data folder ({data_root()}).")
    if choice != OTHER:
        if is_synthetic(data_root() / choice):
            synthetic_notice("caption")
        return data_root() / choice
    typed = st.text_input("Folder or manifest CSV (relative to the data folder)",
                          placeholder="vindr-mammo or my-study/manifest.csv")
    if typed:
        try:
            return resolve_dataset_path(typed)
        except MammoError as err:
            show_error(err)
    return None


def main_options(cdd: bool, weights: list[Path]) -> None:
    if cdd:
        st.radio("CDD-CESM images", list(CDD_LABELS), key="cdd_type", horizontal=True,
                 format_func=CDD_LABELS.get)
    st.selectbox("Architecture", list(DEMO_ARCHS) + list(PAPER_ARCHS), key="arch",
                 format_func=lambda a: ARCH_LABELS.get(a, a), on_change=apply_arch_defaults,
                 help="Choosing one sets size, epochs, learning rate, batch size and weights to "
                      "its recipe: the paper's for Swin-T / ConvNeXtV2-T, the CPU demo's else.")
    c1, c2 = st.columns(2)
    c1.selectbox("Image size (px)", SIZES, key="img_size")
    c2.number_input("Epochs", 1, 300, key="epochs")
    st.segmented_control("Grids", list(MODE_LABELS), key="mode", required=True,
                         format_func=MODE_LABELS.get,
                         help="Baseline: 4 models, one per view. ROI-aware: 8 models, "
                              "with / without ROI × view.")
    st.selectbox("Pretrained weights", [NO_WEIGHTS, *map(str, weights), HUB], key="pretrained",
                 format_func=weights_label,
                 help=f"Local backbone weights: .safetensors files under "
                      f"{data_root() / WEIGHTS_DIR}. Pickled checkpoints are refused.")
    if st.session_state["arch"] in PAPER_ARCHS and st.session_state["pretrained"] == NO_WEIGHTS:
        st.caption(f"ℹ️ From scratch: the paper fine-tunes ImageNet weights. Put a "
                   f".safetensors file under {data_root() / WEIGHTS_DIR} to start from it.")
    c3, c4 = st.columns(2)
    c3.checkbox("Class-balanced loss", key="balanced", help="Weights malignant images by "
                "n_benign / n_malignant, against majority-class collapse.")
    c4.selectbox("Device", available_devices(), key="device",
                 help="Only devices this machine has; auto takes the GPU when there is one.")
    st.toggle("Train the ROI finder too", key="roi_model",
              help="A small model that proposes an ROI for views that come without a mask, "
                   "trained on the training split's annotations after the grid.")
    if st.session_state["roi_model"]:
        c5, c6 = st.columns(2)
        c5.number_input("ROI finder size (px, multiple of 16)", 16, 512, step=16, key="roi_size")
        c6.number_input("ROI finder epochs", 1, 300, key="roi_epochs")


def where_options() -> list[str]:
    """Where the run executes: this machine, or a Ray cluster; returns the command's flags."""
    st.radio("Where it runs", list(WHERE_LABELS), key="executor", horizontal=True,
             format_func=WHERE_LABELS.get,
             help="Ray cluster: each cell trains as a Ray task, on this machine's own Ray or "
                  "on the cluster at the address.")
    if st.session_state["executor"] == "local":
        return []
    st.text_input("Ray address", key="ray_address", placeholder="empty: a local Ray on this machine",
                  help="HOST:PORT of the cluster's head (`ray start --head`); empty starts a Ray "
                       "on this machine for the run and stops it at the end.")
    c1, c2 = st.columns(2)
    c1.number_input("GPUs per cell", min_value=0.05, max_value=64.0, step=0.25, key="gpus_per_cell",
                    placeholder="default: 1 with CUDA, else 0",
                    help="A fraction lets small cells share a GPU.")
    c2.number_input("CPUs per cell", min_value=1, max_value=512, step=1, key="cpus_per_cell",
                    placeholder="default: the command's")
    return executor_args("ray", st.session_state["ray_address"].strip() or None,
                         st.session_state["gpus_per_cell"], st.session_state["cpus_per_cell"])


def advanced_options(cdd: bool) -> None:
    with st.expander("Advanced"):
        c1, c2 = st.columns(2)
        c1.number_input("Batch size", 1, 1024, key="batch_size")
        c2.number_input("Learning rate (AdamW)", min_value=1e-7, max_value=1.0, step=1e-5,
                        format="%.1e", key="lr")
        c1.number_input("Weight decay", min_value=0.0, max_value=1.0, step=0.01, format="%g",
                        key="weight_decay")
        c2.number_input("Seed", 0, 2**31 - 1, key="seed")
        c1.selectbox("Cross-validation folds", CV_FOLDS, key="cv",
                     format_func=lambda k: "off" if k == 0 else f"{k}-fold",
                     help="Patient-grouped K-fold CV on the training split, before the grid "
                          "(the paper's 5).")
        c2.number_input("Split seed", 0, 2**31 - 1, key="split_seed", disabled=not cdd,
                        help="Seeds the train/test split of a dataset that ships none "
                             "(CDD-CESM); the others bring their own split.")
        c1.number_input("Warm start (epochs)", 0, 300, key="warm_start",
                        help="One model on every training image first; each cell starts "
                             "from it (for small datasets). 0 = off.")
        c2.number_input("CLAHE clip limit (0 = off)", min_value=0.0, max_value=40.0,
                        step=0.5, key="clahe_clip")
        c1.checkbox("Augmentation", key="augment")
        c2.checkbox("Breast crop", key="crop")
        c1.checkbox("torch.compile", key="compile",
                    help="Faster steps on a GPU after a slow first one.")


def chosen_options(cdd: bool) -> dict[str, Any]:
    """The page's options as TrainConfig fields (what :func:`core.runfolder.jobs.train_args` takes)."""
    keys = ["arch", *PAPER_DEFAULTS, *FIXED_DEFAULTS, "pretrained"]
    options = {k: st.session_state[k] for k in dict.fromkeys(keys)}
    options["pretrained"] = options["pretrained"] or None
    if not cdd:
        options["cdd_type"] = options["split_seed"] = None
    if not options["roi_model"]:
        options["roi_size"] = options["roi_epochs"] = None
    return options


weights = weight_files()
init_state(weights)
left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader("Options")
    dataset = dataset_picker()
    cdd = is_cddcesm(dataset)
    main_options(cdd, weights)
    where = where_options()
    advanced_options(cdd)
    options = chosen_options(cdd)
    stamp = datetime.now().strftime("%m%d-%H%M")
    name = st.text_input("Run name", value=f"{(dataset.stem if dataset else 'run')}-"
                                           f"{options['arch']}-{options['img_size']}-{stamp}")
    command = None
    if dataset is not None:
        command = train_args(dataset, checkpoints_root() / name, options) + where
        st.caption("The command this starts (the same runs from a terminal):")
        st.code(shlex.join(["python", "-m", "core", *command]), language="bash")
    st.button("Start training", type="primary", disabled=command is None,
              on_click=start, args=(name, command))
    if st.session_state.get("train_error"):
        st.error(st.session_state.pop("train_error"), icon=":material/error:")


def watched_run(job: Job | None) -> Path | None:
    if job is not None and job.run_dir:
        return Path(job.run_dir)
    if st.session_state.get(WATCH_KEY):
        return checkpoints_root() / st.session_state[WATCH_KEY]
    run = selected_run()
    return run.path if run is not None else None


def run_state(run: RunSummary, job: Job | None) -> None:
    """How the run stands, and a Resume button where it stopped before the end."""
    working = job is not None and job.run_dir == str(run.path)
    if working and run.status != "running":
        st.caption("Resuming: reading the dataset and preprocessing …")
    if working or run.status == "complete":
        return
    if run.status == "running":
        st.warning("run.json says running, but no process is working on it (it was stopped "
                   "without a word, e.g. killed). Resume continues it.",
                   icon=":material/warning:")
    elif run.status == "cancelled":
        count = cell_count(parts(run, read_progress(run.path)))
        st.info(f"Cancelled, {count.finished} of {count.total} cells finished. Resume "
                "continues the others from their last completed epoch.",
                icon=":material/pause_circle:")
    elif run.status == "failed":
        st.error(f"Failed: {run.info.get('error') or 'see the job log'}. Resume retries from "
                 "the last completed epoch.", icon=":material/error:")
    else:
        return
    st.button("Resume", type="primary", disabled=job is not None, on_click=resume, args=(run,),
              help="Starts the same command with --resume: finished cells are kept.")
    if st.session_state.get("resume_error"):
        st.error(st.session_state.pop("resume_error"), icon=":material/error:")


@st.fragment(run_every=2)
def monitor() -> None:
    job = current_job()
    watched = watched_run(job)
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
    st.markdown(f"**{run.name}** · {run.status}")
    if run.synthetic:
        synthetic_notice("caption")
    run_state(run, job)
    render_progress(run)


with right:
    st.subheader("Progress")
    monitor()
