"""Compare: baseline vs ROI-aware for one or more runs, with honest references and CIs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import MammoError
from core.evaluate import evaluate_run
from core.evaluate.caveats import TESTS_DIFFER, comparison_caveats
from core.runfolder.layout import METRICS_FILE, PREDICTIONS_FILE, RunSummary
from core.wording import count
from ui.common import (
    RUN_KEY,
    architecture_notice,
    ensure_app_navigation,
    operating_point_picker,
    run_title,
    runs,
    show_error,
    synthetic_notice,
)
from ui.metrics_view import (
    BREAST_CAPTION,
    PAPER_FOOTNOTE,
    breast_table,
    calibration_table,
    confusion_figure,
    cv_table,
    mcnemar_text,
    paired_text,
    paper_table,
    per_cell_table,
    pointing_caption,
    pointing_table,
    reliability_figure,
    roc_figure,
    side_by_side,
)
from ui.roi_view import finder_caption, froc_figure, has_finder, routing_table

ensure_app_navigation()

st.title("Compare")
st.caption("Baseline grid (one model per view) against the ROI-aware grid (routed by view and "
           "ROI presence), on the run's held-out test split.")


def show_table(df: pd.DataFrame, index: str | None = None) -> None:
    """A static table whose cells wrap, so no column is hidden on a laptop screen (a
    scrolling grid hides the right-hand columns); ``index`` names the column to lead with."""
    st.table(df.set_index(index) if index and not df.empty else df)


@st.cache_data(show_spinner=False, max_entries=32)
def load_metrics(path: str, mtime: float) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def metrics_of(run: RunSummary) -> dict[str, Any] | None:
    file = run.path / METRICS_FILE
    if not file.is_file():
        return None
    return load_metrics(str(file), file.stat().st_mtime)


found = [r for r in runs() if (r.path / METRICS_FILE).is_file()
         or (r.path / PREDICTIONS_FILE).is_file()]
if not found:
    st.info("No run has test-set predictions yet. Train one (or build the demo on Home).")
    st.stop()
names = [r.name for r in found]
default = [st.session_state[RUN_KEY]] if st.session_state.get(RUN_KEY) in names else names[:1]
chosen = st.multiselect("Runs", names, default=default)
tuned = operating_point_picker() == "tuned"
selected = [r for r in found if r.name in chosen]
if any(r.synthetic for r in selected):
    synthetic_notice()
architecture_notice(selected)

results: dict[str, dict[str, Any]] = {}
for run in selected:
    result = metrics_of(run)
    if result is None:
        st.caption(f"**{run.name}** has predictions but no metrics yet.")
        if st.button(f"Evaluate {run.name}", key=f"eval-{run.name}"):
            with st.spinner("Bootstrapping confidence intervals …"):
                try:
                    evaluate_run(run.path)
                except MammoError as err:
                    show_error(err)
                else:
                    st.rerun()
        continue
    results[run.name] = result

if len(results) > 1:
    st.subheader("Runs side by side")
    show_table(side_by_side(results, tuned))
    st.caption("Estimate [95 % CI] at "
               f"{'each model’s validation-tuned threshold' if tuned else 'p ≥ 0.5'}; "
               "ROI presence has no threshold.")

for name, result in results.items():
    run = next(r for r in selected if r.name == name)
    st.subheader(name)
    st.caption(f"{run_title(run)} · {count(result.get('n_images', 0), 'test image')}, "
               f"{count(result.get('n_patients', 0), 'patient')}, "
               f"{result.get('n_malignant')} malignant")
    for caveat in comparison_caveats(result, tuned):
        st.warning(caveat, icon=":material/info:")
    show_table(paper_table(result, tuned))
    breasts = breast_table(result, tuned)
    if not breasts.empty:
        level = result["breast_level"]
        st.markdown(f"**Per breast** ({level.get('n_breasts')} breasts, "
                    f"{level.get('n_malignant')} malignant)")
        show_table(breasts)
        st.markdown(paired_text(level, tuned))
        st.caption(BREAST_CAPTION)
    st.markdown(mcnemar_text(result, tuned))
    st.markdown(paired_text(result, tuned))
    st.caption(TESTS_DIFFER)
    st.caption("Values: estimate [95 % CI, patient-level bootstrap] at "
               f"{'each model’s validation-tuned threshold' if tuned else 'p ≥ 0.5'} "
               "(the operating point above, shared with Case review). F1 weighted = per-class "
               "F1 weighted by class size; F1 malignant = the binary F1 of the malignant class. "
               f"{PAPER_FOOTNOTE} ROI presence only = malignant iff an ROI exists. "
               f"Majority class = {(result.get('majority_class') or {}).get('label', '–')}.")
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(roc_figure(result), key=f"roc-{name}")
    with c2:
        confusion = result.get("confusion") or {}
        at = "at_tuned" if tuned else "at_0.5"
        for key, title in (("baseline", "Baseline"), ("roi_aware", "ROI-aware")):
            if key in confusion:
                st.plotly_chart(confusion_figure(confusion[key][at], title),
                                key=f"cm-{name}-{key}")
    if result.get("calibration"):
        r1, r2 = st.columns([3, 2])
        r1.plotly_chart(reliability_figure(result), key=f"rel-{name}")
        with r2:
            show_table(calibration_table(result), "grid")
            st.caption("Calibration of the served probabilities: ECE = mean gap between "
                       "predicted and observed cancer rate over 10 equal-width bins (0 is "
                       "perfect); Brier = mean squared error of the probability (0.25 for a "
                       "constant 50 %). Temperature and offset were fitted per grid on the "
                       "grid's validation images (per cell only where a cell had 30 of each "
                       "class).")
    if has_finder(result):
        st.markdown("**ROI drawn by a radiologist, proposed by the ROI finder, or none**")
        f1, f2 = st.columns([3, 2])
        with f1:
            show_table(routing_table(result, tuned), "routing")
        f2.plotly_chart(froc_figure(result), key=f"froc-{name}")
        st.caption(finder_caption(result))
    if result.get("cam_pointing"):
        st.markdown("**Does Grad-CAM point at the lesion?**")
        show_table(pointing_table(result), "grid")
        st.caption(pointing_caption(result))
    with st.expander("Per cell (threshold 0.5)"):
        show_table(per_cell_table(result), "cell")
    if result.get("cv"):
        with st.expander("Cross-validation (mean ± sd over folds)"):
            show_table(cv_table(result), "grid")
            if result.get("cv_recipe"):
                st.caption(result["cv_recipe"])
