"""The sidebar every page shares: run picker, compute device, synthetic badge, job."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

from core.runfolder.jobs import current_job
from core.runfolder.layout import RunSummary, recommended_run
from ui.common import RUN_KEY, run_title, runs

STATUS_MARK: dict[str, str] = {"complete": "●", "running": "◐", "cancelled": "○",
                               "failed": "✕"}


def device_label() -> str:
    """GPU name when one is visible, else CPU, without importing torch on the first page.

    torch is asked only once another page has loaded it; before that the
    NVIDIA driver's /proc entry names the card.
    """
    torch = sys.modules.get("torch")
    # another session's thread may be importing torch right now: a half-initialised
    # module has no .cuda yet, so only a fully imported torch is asked
    if torch is not None and not getattr(getattr(torch, "__spec__", None), "_initializing", False):
        try:
            if torch.cuda.is_available():
                return f"GPU · {torch.cuda.get_device_name(0)}"
            return f"CPU · {os.cpu_count()} cores"
        except AttributeError:
            pass
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                return f"GPU · {line.split(':', 1)[1].strip()}"
    return f"CPU · {os.cpu_count()} cores"


def _default_run(found: list[RunSummary]) -> str:
    return recommended_run(found).name  # type: ignore[union-attr]  # found is not empty


def render_sidebar() -> RunSummary | None:
    """Draw the sidebar; returns the selected run (None when there is none)."""
    found = runs()
    by_name = {r.name: r for r in found}
    with st.sidebar:
        st.markdown("### MammoRoute")
        selected = None
        if found:
            if st.session_state.get(RUN_KEY) not in by_name:
                st.session_state[RUN_KEY] = _default_run(found)
            name = st.selectbox(
                "Run", list(by_name), key=RUN_KEY,
                format_func=lambda n: f"{STATUS_MARK.get(by_name[n].status, '·')} {n}",
                help="A trained grid under the checkpoints folder. ● complete, ◐ running, "
                     "○ cancelled, ✕ failed.")
            selected = by_name[name]
            st.caption(run_title(selected) + f" · {selected.status}")
            if selected.synthetic:
                st.markdown(":orange-badge[⚠️ synthetic data]")
        else:
            st.caption("No trained run yet.")
        st.caption(f"Device: {device_label()}")
        job_status()
    return selected


JOB_POLL_S = 3.0


@st.fragment(run_every=JOB_POLL_S)
def job_status() -> None:
    """The background job as it is now, polled on its own, so the sidebar never says a
    finished job is running.  Only this fragment reruns: a whole-page rerun when a
    job ends would swallow a click made at that moment (a Predict, a Resume)."""
    job = current_job()
    if job is not None:
        st.caption(f"◐ {job.kind} job running: {job.name}")
