"""Tables and figures of a run's metrics.json for the Compare page."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.evaluate import paper_reported
from core.evaluate.constants import F_SCORE_DEFINITION, F_SCORE_LABEL
from core.evaluate.report import format_p
from ui.common import GRID_COLOURS, fmt2

METRICS: tuple[tuple[str, str], ...] = (
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    (F_SCORE_DEFINITION, F_SCORE_LABEL),
    ("f1_weighted", "F1 weighted"),
    ("f1_malignant", "F1 malignant"),
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("roc_auc", "ROC AUC"),
)
SYSTEMS: tuple[tuple[str, str], ...] = (
    ("baseline", "without ROI consideration (baseline)"),
    ("roi_aware", "with ROI consideration (ROI-aware)"),
    ("roi_presence_only", "reference: ROI presence only"),
    ("majority", "reference: majority class"),
)
PAPER_LABEL = "paper (reported, not reproduced here)"
PAPER_KEYS: dict[str, str] = {"sensitivity": "sensitivity", "specificity": "specificity",
                              F_SCORE_DEFINITION: "f_score", "accuracy": "accuracy"}
PAPER_FOOTNOTE = ("The paper does not define its F-score; the harmonic mean of sensitivity and "
                  "specificity is the only reading that reproduces all eight of its printed "
                  "values (malignant F1 gives 0.69 for its 0.90, weighted F1 0.78 for its "
                  "0.00), so the paper's numbers sit in that column only.")


KEEP_TOGETHER = "\u2060"
"""An invisible word joiner after the interval's dash: a wrapping table cell breaks between
the estimate and its interval, never inside the interval ("0.80–" / "0.93]")."""


def with_ci(entry: Mapping[str, Any] | None) -> str:
    """``0.87 [0.80–0.93]``; missing is "–"."""
    if not entry or entry.get("value") is None:
        return "–"
    if entry.get("ci_low") is None or entry.get("ci_high") is None:
        return fmt2(entry["value"])
    return (f"{fmt2(entry['value'])} [{fmt2(entry['ci_low'])}–{KEEP_TOGETHER}"
            f"{fmt2(entry['ci_high'])}]")


def system_block(result: Mapping[str, Any], key: str, tuned: bool) -> Mapping[str, Any] | None:
    """A system's metric block at the operating point: the grids' tuned blocks when
    ``tuned``; the reference rows have no threshold and one block."""
    if tuned and key in ("baseline", "roi_aware"):
        return (result.get("tuned") or {}).get(key)
    return result.get(key)


def paper_table(result: Mapping[str, Any], tuned: bool = False) -> pd.DataFrame:
    """Systems as rows, the paper's metrics as columns, each a value with its 95 % CI.

    The paper's own numbers (when the run's dataset / architecture match one of
    its tables) follow as rows labelled as reported, not reproduced.
    """
    rows = []
    for key, label in SYSTEMS:
        block = system_block(result, key, tuned)
        if not block or all(v.get("value") is None for v in block.values()):
            continue
        rows.append({"system": label, **{name: with_ci(block.get(m)) for m, name in METRICS}})
    paper = result.get("paper_reported") or nearest_paper(result.get("run") or {})
    if paper:
        for key, side in (("baseline", "without ROI"), ("roi_aware", "with ROI")):
            reported = paper.get(key) or {}
            rows.append({"system": f"{PAPER_LABEL}, {side} — Table {paper.get('table')}",
                         **{name: fmt2(reported[PAPER_KEYS[m]]) if m in PAPER_KEYS else "–"
                            for m, name in METRICS}})
    return pd.DataFrame(rows).set_index("system") if rows else pd.DataFrame()


def breast_table(result: Mapping[str, Any], tuned: bool = False) -> pd.DataFrame:
    """:func:`paper_table` of the ``breast_level`` block: the same systems and metrics per
    breast.  The block carries no run header, so no paper rows join it: the paper reports
    images only.  Empty for a metrics.json written before breast-level results existed."""
    level = result.get("breast_level")
    return paper_table(level, tuned) if level else pd.DataFrame()


BREAST_CAPTION = ("Per breast (one study, one side): malignant when any of its images is; "
                  "called malignant when any view's own call is, each at its own threshold; "
                  "ROC AUC ranks breasts by the highest probability of their views; ROI "
                  "presence only = any view has an ROI. 95 % CI: the image table's patient "
                  "resamples.")


def nearest_paper(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The paper's table for a run's dataset family (a phantom of VinDr counts as VinDr)."""
    dataset = str(run.get("dataset") or "").lower().removeprefix("phantom-")
    return paper_reported(dataset, run.get("arch"))


def per_cell_table(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for grid, cells in (result.get("per_cell") or {}).items():
        for cell, c in cells.items():
            rows.append({"grid": "ROI-aware" if grid == "roi_aware" else "baseline", "cell": cell,
                         "images": c.get("n"), "malignant": c.get("n_malignant"),
                         "fallback": c.get("n_fallback"),
                         "threshold": ", ".join(fmt2(t) for t in c.get("thresholds") or []),
                         "sensitivity": fmt2(c.get("sensitivity")),
                         "specificity": fmt2(c.get("specificity")),
                         "accuracy": fmt2(c.get("accuracy")), "ROC AUC": fmt2(c.get("auc"))})
    return pd.DataFrame(rows)


def cv_table(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for grid, metrics in (result.get("cv") or {}).items():
        row: dict[str, Any] = {"grid": grid}
        for name, m in metrics.items():
            row[name] = f"{fmt2(m.get('mean'))} ± {fmt2(m.get('sd'))}"
        rows.append(row)
    return pd.DataFrame(rows)


def mcnemar_text(result: Mapping[str, Any], tuned: bool = False) -> str:
    mc = (result.get("mcnemar") or {}).get("at_tuned" if tuned else "at_0.5")
    if not mc:
        return "McNemar exact test: needs both grids."
    return (f"McNemar exact test (image-level), baseline vs ROI-aware: "
            f"**p = {format_p(mc.get('p'))}** ({mc.get('n_pairs')} paired images; "
            f"only baseline right: {mc.get('b')}, only ROI-aware right: {mc.get('c')}).")


PAIRED: tuple[tuple[str, str], ...] = (("paired", "ROI-aware"),
                                       ("paired_proposed", "ROI-aware routed by the ROI finder"))
DELTAS: tuple[tuple[str, str], ...] = (
    ("delta_roc_auc", "ROC AUC"), ("delta_sensitivity", "sensitivity"),
    ("delta_specificity", "specificity"), ("delta_balanced_accuracy", "balanced accuracy"),
)


def signed(x: float | None) -> str:
    """``+0.25`` / ``−0.03`` (a true minus sign); missing is "–"."""
    return "–" if x is None else f"{x:+.2f}".replace("-", "−")


def delta_with_ci(entry: Mapping[str, Any] | None) -> str:
    """``+0.25 [+0.10, +0.40]``: a signed difference, so a CI that spans 0 shows its sign change."""
    if not entry or entry.get("value") is None:
        return "–"
    if entry.get("ci_low") is None or entry.get("ci_high") is None:
        return signed(entry["value"])
    return f"{signed(entry['value'])} [{signed(entry['ci_low'])}, {signed(entry['ci_high'])}]"


def paired_text(result: Mapping[str, Any], tuned: bool = False) -> str:
    """Markdown: per routing, the patient-level sign-flip test against the baseline and the
    paired differences (that routing minus baseline) with their bootstrap CIs.

    McNemar counts images as if independent; this is the comparison that treats
    a patient's images as one unit.  A metrics.json written before these figures
    existed has no ``paired`` block: say how to add it instead of showing nothing.
    """
    if "paired" not in result:
        name = (result.get("run") or {}).get("name", "NAME")
        return ("Patient-level paired statistics are not in this run's metrics.json yet: run "
                f"`python -m core evaluate checkpoints/{name}`.")
    lines = []
    for key, name in PAIRED:
        paired = result.get(key)
        if not paired:
            continue
        test = (paired.get("sign_flip") or {}).get("at_tuned" if tuned else "at_0.5") or {}
        deltas = (paired.get("tuned") or {}) if tuned else paired
        lines.append(
            f"Sign-flip exact test (patient-level), baseline vs {name}: "
            f"**p = {format_p(test.get('p'))}** ({test.get('n_patients')} patients, "
            f"{test.get('n_patients_net')} with a net difference). {name} minus baseline "
            "(95 % CI, the same patient resamples for both): "
            + " · ".join(f"{label} {delta_with_ci(deltas.get(k))}" for k, label in DELTAS) + ".")
    return "\n\n".join(lines) if lines else "Sign-flip test (patient-level): needs both grids."


def roc_figure(result: Mapping[str, Any]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line={"dash": "dot", "color": "#cccccc"}, hoverinfo="skip"))
    for key, label in SYSTEMS[:3]:
        roc = (result.get("roc") or {}).get(key) or {}
        if not roc.get("fpr"):
            continue
        auc = ((result.get(key) or {}).get("roc_auc") or {}).get("value")
        fig.add_trace(go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines",
                                 name=f"{label.split(' (')[0].replace('reference: ', '')} "
                                      f"(AUC {fmt2(auc)})",
                                 line={"color": GRID_COLOURS[key], "shape": "hv"}))
    fig.update_layout(height=400, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": "ROC curves (test set)", "font": {"size": 13}},
                      xaxis={"title": "1 − specificity", "range": [0, 1], "constrain": "domain"},
                      yaxis={"title": "sensitivity", "range": [0, 1.02], "scaleanchor": "x"},
                      legend={"orientation": "h", "y": -0.25, "font": {"size": 11}})
    return fig


def confusion_figure(counts: Mapping[str, int], title: str) -> go.Figure:
    """2×2 counts: rows true label, columns predicted, malignant first like the paper."""
    z = [[counts.get("tp", 0), counts.get("fn", 0)], [counts.get("fp", 0), counts.get("tn", 0)]]
    fig = go.Figure(go.Heatmap(z=z, x=["pred. malignant", "pred. benign"],
                               y=["malignant", "benign"], text=z, texttemplate="%{text}",
                               colorscale=[[0, "#f4f6f8"], [1, "#1f4e79"]], showscale=False,
                               hovertemplate="true %{y}, %{x}: %{z}<extra></extra>"))
    fig.update_layout(height=220, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": title, "font": {"size": 13}},
                      yaxis={"autorange": "reversed", "title": "true"})
    return fig


def headline(result: Mapping[str, Any], tuned: bool = False) -> dict[str, Any]:
    """One run's figures for the side-by-side table, at the page's operating point."""
    run = result.get("run") or {}
    row: dict[str, Any] = {"run": run.get("name"), "dataset": run.get("dataset"),
                           "arch": run.get("arch"), "size": run.get("img_size"),
                           "test images": result.get("n_images")}
    for key, short in (("baseline", "baseline"), ("roi_aware", "ROI-aware"),
                       ("roi_presence_only", "ROI presence")):
        for metric, name in (("accuracy", "acc"), ("balanced_accuracy", "bal. acc"),
                             ("roc_auc", "AUC")):
            row[f"{short} {name}"] = with_ci((system_block(result, key, tuned) or {}).get(metric))
    mc = (result.get("mcnemar") or {}).get("at_tuned" if tuned else "at_0.5") or {}
    row["McNemar p"] = format_p(mc.get("p"))
    for key, short in (("baseline", "baseline"), ("roi_aware", "ROI-aware")):
        score = (result.get("cam_pointing") or {}).get(key)
        if score:
            row[f"{short} CAM hits"] = (f"{fmt2(score.get('hit_rate'))} "
                                        f"(chance {fmt2(score.get('chance'))})")
    return row


def side_by_side(results: Mapping[str, Mapping[str, Any]], tuned: bool) -> pd.DataFrame:
    """Runs as columns, figures as rows (:func:`headline`): a few runs fit any width, where
    a row per run needs some twenty columns."""
    table = pd.DataFrame([headline(r, tuned) for r in results.values()],
                         index=list(results)).drop(columns="run").T
    table.index.name = "run"
    return table.astype(str)


def pointing_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """Grad-CAM pointing per grid: hit rate, chance, and how many times chance it is."""
    pointing = result.get("cam_pointing") or {}
    rows = []
    for key, label in (("baseline", "baseline"), ("roi_aware", "ROI-aware")):
        score = pointing.get(key)
        if not score:
            continue
        hit, chance = score.get("hit_rate"), score.get("chance")
        rows.append({"grid": label, "images": score.get("n"), "CAM hit rate": fmt2(hit),
                     "chance": fmt2(chance),
                     "× chance": f"{hit / chance:.1f}" if hit is not None and chance else "–"})
    return pd.DataFrame(rows)


def pointing_caption(result: Mapping[str, Any]) -> str:
    """What the pointing numbers mean, with the CAM method that made the maps."""
    pointing = result.get("cam_pointing") or {}
    method = pointing.get("method")
    return ("Grad-CAM pointing on the malignant test images that have an ROI: a hit is a map "
            "whose peak lies inside the ROI, dilated by "
            f"{100 * (pointing.get('dilation') or 0.02):.0f} % of the image side; chance is "
            "the dilated ROI's mean share of the image (what a random peak would score)."
            + (f" Maps: {method}." if method else ""))


def reliability_figure(result: Mapping[str, Any]) -> go.Figure:
    """Reliability diagram of each grid's served P(malignant) on the test set.

    One point per non-empty bin of ``metrics.json``'s ``calibration`` block
    (10 equal-width bins), sized by its image count; a calibrated grid lies on
    the diagonal.  The legend carries each grid's ECE and Brier score.
    """
    cal = result.get("calibration") or {}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line={"dash": "dot", "color": "#cccccc"}, hoverinfo="skip"))
    for key, label in (("baseline", "baseline"), ("roi_aware", "ROI-aware")):
        block = cal.get(key) or {}
        curve = block.get("curve") or {}
        if not curve.get("mean_p"):
            continue
        n = curve.get("n") or []
        top = max(n, default=1)
        fig.add_trace(go.Scatter(
            x=curve["mean_p"], y=curve["frac_malignant"], mode="lines+markers",
            name=f"{label} (ECE {fmt2(block.get('ece'))}, Brier {fmt2(block.get('brier'))})",
            customdata=n, line={"color": GRID_COLOURS[key]},
            marker={"size": [6 + 14 * (k / top) ** 0.5 for k in n]},
            hovertemplate="mean P %{x:.2f}: %{y:.2f} malignant (%{customdata} images)"
                          "<extra></extra>"))
    fig.update_layout(height=400, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": "Reliability (test set, 10 equal-width bins)",
                             "font": {"size": 13}},
                      xaxis={"title": "mean predicted P(malignant)", "range": [0, 1],
                             "constrain": "domain"},
                      yaxis={"title": "fraction malignant", "range": [0, 1.02], "scaleanchor": "x"},
                      legend={"orientation": "h", "y": -0.25, "font": {"size": 11}})
    return fig


def calibration_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """ECE and Brier score per grid, served (calibrated) and, when recorded, before scaling."""
    cal = result.get("calibration") or {}
    rows = []
    for key, label in (("baseline", "baseline"), ("roi_aware", "ROI-aware")):
        block = cal.get(key)
        if not block:
            continue
        raw = block.get("uncalibrated") or {}
        rows.append({"grid": label, "images": block.get("n"),
                     "ECE (served)": fmt2(block.get("ece")),
                     "Brier (served)": fmt2(block.get("brier")),
                     "ECE before scaling": fmt2(raw.get("ece")),
                     "Brier before scaling": fmt2(raw.get("brier"))})
    return pd.DataFrame(rows)
