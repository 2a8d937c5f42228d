"""Data: a dataset's composition (the paper's Tables 1–4) and a filterable gallery."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.datasets import load_dataset
from core.datasets.describe import describe, tables
from core.datasets.run_data import is_run_dataset, run_options
from core.errors import MammoError
from core.grid import VIEWS
from core.phantom import is_synthetic
from core.pixels.spec import PreprocessParams
from core.review.gallery import gallery_tile
from core.wording import count
from ui.common import (
    LABEL_COLOURS,
    data_root,
    ensure_app_navigation,
    resolve_dataset_path,
    run_dataset_table,
    selected_run,
    show_error,
    synthetic_notice,
)

THUMB = 160
PER_PAGE = 18
COLUMNS = 6
OTHER = "Other folder or manifest…"

ensure_app_navigation()

st.title("Data")


@st.cache_data(show_spinner="Reading the dataset …", max_entries=8)
def dataset_table(path: str, mtime: float) -> pd.DataFrame:
    return load_dataset(path)


def candidates() -> list[Path]:
    """Folders and CSVs directly under the data root (the phantoms first)."""
    root = data_root()
    if not root.is_dir():
        return []
    items = [p for p in root.iterdir() if not p.name.startswith(".")
             and (p.is_dir() or p.suffix.lower() == ".csv")]
    return sorted(items, key=lambda p: (not p.name.startswith("phantom-"), p.name))


def bars(counts: dict[str, dict[str, int]], names: dict[str, str], title: str) -> go.Figure:
    fig = go.Figure()
    for label in ("malignant", "benign"):
        fig.add_trace(go.Bar(x=[names[k] for k in names], y=[counts[k][label] for k in names],
                             name=label, marker_color=LABEL_COLOURS[label],
                             text=[counts[k][label] for k in names], textposition="outside"))
    fig.update_layout(barmode="group", height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": title, "font": {"size": 13}},
                      legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.15})
    return fig


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, mask_path: str, roi_shapes: str) -> np.ndarray:
    return gallery_tile({"image_path": path, "mask_path": mask_path, "roi_shapes": roi_shapes},
                        PreprocessParams(THUMB))


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


options = candidates()
run = selected_run()
default_index = 0
if run is not None and run.info.get("dataset_path"):
    names = [str(p) for p in options]
    if str(run.info["dataset_path"]) in names:
        default_index = names.index(str(run.info["dataset_path"]))
labels = [p.name for p in options] + [OTHER]
choice = st.selectbox("Dataset", labels, index=default_index,
                      help=f"Datasets are read from the data folder {data_root()}.")
path: Path | None = options[labels.index(choice)] if choice != OTHER else None
if choice == OTHER:
    typed = st.text_input("Folder or manifest CSV (relative to the data folder)")
    if typed:
        try:
            path = resolve_dataset_path(typed)
        except MammoError as err:
            show_error(err)
if path is None:
    if not options:
        st.info("The data folder is empty. Build the demo on Home, or put a dataset under "
                f"{data_root()}.")
    st.stop()

own = run is not None and is_run_dataset(run.info, path)  # then read as that run read it
try:
    df = run_dataset_table(run) if own else dataset_table(str(path), path.stat().st_mtime)
    if own:
        st.caption(f"The dataset of run {run.name}. {run_options(run.info).sentence()}")
except MammoError as err:
    show_error(err)
    st.stop()
if is_synthetic(path):
    synthetic_notice()

summary = describe(df)
t = tables(summary)
st.caption(f"{count(summary['images'], 'image')} · "
           f"{count(df['patient_id'].nunique(), 'patient')} · "
           f"{count(df['study_id'].nunique(), 'study', 'studies')}")
c1, c2 = st.columns(2)
with c1:
    st.markdown("**Training / testing split** (as Tables 1 and 3)")
    st.table(t["split"])
    st.plotly_chart(bars(summary["split"], {"train": "training", "test": "testing"},
                         "Images per split"), key="bars-split")
with c2:
    st.markdown("**Presence of ROIs** (as Tables 2 and 4)")
    st.table(t["roi"])
    st.plotly_chart(bars(summary["roi"], {"with": "with ROIs", "without": "without ROIs"},
                         "Images by ROI presence"), key="bars-roi")
st.markdown("**Views**")
st.table(t["views"])

st.subheader("Gallery")
f1, f2, f3, f4 = st.columns(4)
views = f1.multiselect("View", VIEWS, default=list(VIEWS))
labels_chosen = f2.multiselect("Label", ["benign", "malignant"], default=["benign", "malignant"])
roi_choice = f3.selectbox("ROI", ["any", "with ROI", "without ROI"])
split_choice = f4.selectbox("Split", ["all", "train", "test"])
shown = df[df["view_name"].isin(views) & df["label"].isin(labels_chosen)]
if roi_choice != "any":
    shown = shown[shown["roi"] == (roi_choice == "with ROI")]
if split_choice != "all":
    shown = shown[shown["split"] == split_choice]
pages = max(1, -(-len(shown) // PER_PAGE))
page = int(st.number_input(f"Page (of {pages})", 1, pages, 1)) if pages > 1 else 1
st.caption(f"{count(len(shown), 'image')} match · outlines show the ROI")
batch = shown.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
cols = st.columns(COLUMNS)
for i, (_, row) in enumerate(batch.iterrows()):
    with cols[i % COLUMNS]:
        try:
            img = thumbnail(row["image_path"], _text(row.get("mask_path")),
                            _text(row.get("roi_shapes")))
        except MammoError as err:
            st.caption(f"⚠️ {err}")
            continue
        colour = "red" if row["label"] == "malignant" else "green"
        st.image(img, width="stretch")
        st.caption(f"{row['view_name']} · :{colour}[{row['label']}]"
                   + (" · ROI" if row["roi"] else ""))
