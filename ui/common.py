"""Formatting, colours, paths and the selected run, shared by every page."""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.datasets.run_data import load_run_dataset
from core.errors import MammoError, ManifestError
from core.models import architecture_note
from core.phantom import SYNTHETIC_TEXT, YOURS_ON_SYNTHETIC_TEXT
from core.runfolder.layout import (
    RUN_FILE,
    RunSummary,
    checkpoints_root,
    data_root,
    list_runs,
    read_run,
)

BENIGN = "#2e7d32"
MALIGNANT = "#c62828"
LABEL_COLOURS: dict[str, str] = {"benign": BENIGN, "malignant": MALIGNANT}
GRID_COLOURS: dict[str, str] = {"baseline": "#7f8c8d", "roi_aware": "#1f4e79",
                                "roi_presence_only": "#e69f00", "majority": "#bbbbbb"}
RUN_KEY = "run_name"
APP_SCRIPT = Path(__file__).resolve().parent.parent / "app.py"
OPERATING_KEY = "operating_point"


_PAGE_RUN = threading.local()  # set while app.py runs a page (one script thread per session)


@contextmanager
def app_page_run() -> Iterator[None]:
    """``app.py`` runs the selected page inside this, so a page knows it came through the
    app's navigation (:func:`ensure_app_navigation`)."""
    _PAGE_RUN.via_app = True
    try:
        yield
    finally:
        _PAGE_RUN.via_app = False


def ensure_app_navigation() -> None:
    """Hand a page that Streamlit ran straight from ``pages/`` back to ``app.py``.

    Until some script has called ``st.navigation``, Streamlit treats a top-level
    ``pages/`` folder as a navigation of its own, per session.  A bookmark opened
    first on a fresh server, or several sessions opening at once, could then run
    the page without the app's navigation and sidebar (no run picker: "No
    trained run yet" although runs existed; Streamlit issue #9624).  Such a run
    clears Streamlit's flag and reruns: every later run goes through
    ``app.py``, which resolves the same URL.  A page run on its own (AppTest,
    ``streamlit run pages/x.py``) is its own main script and is left alone.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    if getattr(_PAGE_RUN, "via_app", False):
        return
    ctx = get_script_run_ctx()
    if ctx is None or Path(ctx.main_script_path).resolve() != APP_SCRIPT:
        return
    PagesManager.uses_pages_directory = False
    st.rerun()


def _number(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, not a number or NaN."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def fmt2(x: Any) -> str:
    """Two decimals; missing or NaN values are an en dash."""
    value = _number(x)
    return "–" if value is None else f"{value:.2f}"


def synthetic_notice(kind: str = "warning", images: str = "phantom") -> None:
    """The visible statement every page with phantom data or results carries.

    ``images`` says what is under review: ``"phantom"`` (the run's own
    synthetic images) or ``"yours"`` (uploaded images, which may be real):
    then only the models' training data is synthetic, and the notice says so.
    """
    text = SYNTHETIC_TEXT if images == "phantom" else YOURS_ON_SYNTHETIC_TEXT
    if kind == "warning":
        st.warning(text, icon=":material/warning:")
    else:
        st.caption(f"⚠️ {text}")


def keep(key: str, default: Any) -> None:
    """Before drawing the widget keyed ``key``: give it its last value, or ``default``.

    Streamlit forgets a widget's value on pages where it is not drawn; a
    shadow key outside the widget keeps it across page switches.  Draw the
    widget without a default of its own (its value comes from session state).
    """
    shadow = f"_kept_{key}"
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(shadow, default)
    st.session_state[shadow] = st.session_state[key]


def operating_point_picker(container: Any = st) -> str:
    """The page setting both Case review and Compare call with ("tuned" or "paper")."""
    from core.review.report import OPERATING_POINTS

    keep(OPERATING_KEY, "tuned")
    return container.segmented_control(
        "Operating point", list(OPERATING_POINTS), key=OPERATING_KEY, required=True,
        format_func={"tuned": "Validation-tuned thresholds", "paper": "p ≥ 0.5 (paper)"}.get,
        help="Shared by Case review and Compare. Validation-tuned: each model's own threshold, "
             "chosen on its validation images (Youden) and stated with what it caught there. "
             "p ≥ 0.5: the paper's rule for every model.")


def architecture_notice(runs: Iterable[RunSummary]) -> None:
    """Say so when a run's architecture is not one of the paper's (the demo's CNN)."""
    for note in dict.fromkeys(filter(None, (architecture_note(str(r.info.get("arch")))
                                            for r in runs))):
        st.caption(f"ℹ️ {note}")


def show_error(err: MammoError | Exception) -> None:
    """One line, no traceback: ``<file>: <problem>`` for the project's own errors."""
    st.error(str(err), icon=":material/error:")


def resolve_dataset_path(text: str | Path) -> Path:
    """A path typed by the user, relative to the data root or absolute inside it.

    Anything that resolves outside the data root (``..``, symlinks, other
    folders) is refused: the browser must not become a file browser.
    """
    root = data_root().resolve()
    raw = Path(str(text).strip()).expanduser()
    path = (raw if raw.is_absolute() else root / raw).resolve()
    if path != root and root not in path.parents:
        raise ManifestError(f"outside the data folder {root}; put the dataset under it "
                            f"(or set MAMMOROUTE_DATA)", text)
    if not path.exists():
        raise ManifestError("no such file or folder under the data folder", path)
    return path


@st.cache_data(show_spinner="Reading the dataset …", max_entries=4)
def _run_dataset(run_path: str, run_mtime: float, data_mtime: float) -> pd.DataFrame:
    return load_run_dataset(read_run(run_path))


def run_dataset_table(run: RunSummary) -> pd.DataFrame:
    """The run's dataset as the run read it, read again only when run.json or the dataset
    changes (a MammoError when it cannot be read)."""
    data = Path(str(run.info.get("dataset_path") or ""))
    data_mtime = data.stat().st_mtime if run.info.get("dataset_path") and data.exists() else 0.0
    return _run_dataset(str(run.path), (run.path / RUN_FILE).stat().st_mtime, data_mtime)


def runs() -> list[RunSummary]:
    return list_runs(checkpoints_root())


def selected_run() -> RunSummary | None:
    """The run picked in the sidebar, read fresh from disk (None if there is none)."""
    name = st.session_state.get(RUN_KEY)
    if not name:
        return None
    try:
        return read_run(checkpoints_root() / name)
    except MammoError:
        return None


def run_title(run: RunSummary) -> str:
    info = run.info
    parts = [str(info.get("dataset", "?")), str(info.get("arch", "?")),
             f"{info.get('img_size', '?')} px", f"{info.get('epochs', '?')} ep"]
    if info.get("balanced"):
        parts.append("balanced")
    return " · ".join(parts)
