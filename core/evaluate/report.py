"""Text rendering: the paper-style tables (Tables 5–8 layout), per-cell lines, CV summary.

What ``python -m core evaluate`` prints; it reads only an evaluation result
(the ``metrics.json`` dict), never the prediction table.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from core.evaluate.constants import (
    F_SCORE_DEFINITION,
    F_SCORE_LABEL,
    MODE_KEYS,
    SYNTHETIC_BANNER,
)
from core.evaluate.roifinder import PROPOSED_KEY, format_roi_model

TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
    (F_SCORE_LABEL, F_SCORE_DEFINITION),
    ("F1 weighted (f1_weighted)", "f1_weighted"),
    ("F1 malignant (f1_malignant)", "f1_malignant"),
    ("Accuracy", "accuracy"),
    ("Balanced accuracy", "balanced_accuracy"),
    ("ROC AUC", "roc_auc"),
)
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("baseline", "without ROI consideration (baseline)"),
    ("roi_aware", "with ROI consideration (ROI-aware)"),
    ("roi_presence_only", "ROI presence only"),
    ("majority", "majority class"),
)


def format_value(x: float | None) -> str:
    """Two decimals, "–" for a metric that is undefined (stored as null)."""
    return "–" if x is None else f"{x:.2f}"


def format_cell(entry: Mapping[str, float | None]) -> str:
    """``0.87 [0.84, 0.90]``; missing values are "–"."""
    if entry.get("value") is None:
        return "–"
    return f"{format_value(entry['value'])} [{format_value(entry.get('ci_low'))}, {format_value(entry.get('ci_high'))}]"


def format_p(p: float | None) -> str:
    """A p-value as a reader wants it: three decimals, "< 0.001" below that."""
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.2f}".replace("-", "−")


def format_delta(entry: Mapping[str, float | None]) -> str:
    """``+0.03 [−0.01, +0.07]``: a difference with its 95 % CI; missing values are "–"."""
    if entry.get("value") is None:
        return "–"
    return (f"{_fmt_signed(entry['value'])} [{_fmt_signed(entry.get('ci_low'))}, "
            f"{_fmt_signed(entry.get('ci_high'))}]")


DELTA_ROWS: tuple[tuple[str, str], ...] = (
    ("ROC AUC", "delta_roc_auc"), ("sensitivity", "delta_sensitivity"),
    ("specificity", "delta_specificity"), ("balanced accuracy", "delta_balanced_accuracy"),
)


def format_paired(paired: Mapping[str, Any] | None, threshold: str, first: str,
                  second: str) -> list[str]:
    """The patient-level sign-flip test and the paired deltas (``second`` minus ``first``).

    ``threshold`` is "0.5" or "tuned", as in :func:`format_paper_table`.
    """
    if not paired:
        return [f"Sign-flip exact (patient-level), {first} vs {second}: – (needs both grids)"]
    test = paired["sign_flip"]["at_0.5" if threshold == "0.5" else "at_tuned"]
    deltas = paired if threshold == "0.5" else paired["tuned"]
    return [
        f"Sign-flip exact (patient-level), {first} vs {second}: p = {format_p(test['p'])} "
        f"({test['n_patients']} patients, {test['n_patients_net']} with a net difference)",
        f"Paired difference, {second} minus {first} (95 % CI over the same patient resamples):",
        "  " + "; ".join(f"{label} {format_delta(deltas[key])}" for label, key in DELTA_ROWS),
    ]


def _header_lines(result: Mapping[str, Any]) -> list[str]:
    run = result.get("run") or {}
    external = result.get("dataset")
    lines = []
    if run.get("synthetic") or (external or {}).get("synthetic"):
        lines.append(SYNTHETIC_BANNER)
    fields = [f"{k} {run[k]}" for k in ("dataset", "arch", "img_size", "epochs", "seed") if k in run]
    title = f"Run {run['name']}" if "name" in run else "Evaluation"
    lines.append(title + (f" — {', '.join(fields)}" if fields else ""))
    if external:
        lines.append(f"External dataset {external['name']} ({external['layout']} layout, "
                     f"split {external['split']}, {external['n_images']} images): {external['path']}")
        if external.get("unpredicted"):
            lines.append(f"{external['unpredicted']} image × grid predictions missing: "
                         "no model of the run serves their view")
        if external.get("training_dataset"):
            lines.append("Note: this is the dataset the run was trained on"
                         + ("; its training images are not an external test"
                            if external["split"] != "test" else ""))
    lines.append(f"{result['n_images']} test images, {result['n_patients']} patients, "
                 f"{result['n_malignant']} malignant")
    return lines


def format_paper_table(result: Mapping[str, Any], threshold: str = "0.5",
                       header: bool = True) -> str:
    """The paper's Tables 5–8 layout with CIs, reference columns, McNemar and paired deltas.

    ``threshold`` is "0.5" (the top-level numbers) or "tuned" (each cell's
    validation-tuned threshold; the reference columns do not depend on it).
    """
    if threshold not in ("0.5", "tuned"):
        raise ValueError("threshold must be '0.5' or 'tuned'")
    systems = {k: (result["tuned"][k] if threshold == "tuned" and k in MODE_KEYS.values()
                   else result[k]) for k, _ in TABLE_COLUMNS}
    label_w = max(len(r[0]) for r in TABLE_ROWS)
    widths = [max(len(title), 17) for _, title in TABLE_COLUMNS]
    lines = _header_lines(result) if header else []
    at = "p ≥ 0.5" if threshold == "0.5" else "p ≥ validation-tuned threshold of the serving cell"
    lines.append(f"Threshold: {at}")
    head = " " * label_w + "  " + "  ".join(t.ljust(w) for (_, t), w in zip(TABLE_COLUMNS, widths))
    lines += [head, "-" * len(head)]
    for label, metric in TABLE_ROWS:
        cells = [format_cell(systems[k][metric]).ljust(w) for (k, _), w in zip(TABLE_COLUMNS, widths)]
        lines.append(label.ljust(label_w) + "  " + "  ".join(cells).rstrip())
    mc = result["mcnemar"]["at_0.5" if threshold == "0.5" else "at_tuned"]
    if mc:
        lines.append(f"McNemar exact (image-level), baseline vs ROI-aware: p = {format_p(mc['p'])} "
                     f"({mc['n_pairs']} paired images; only baseline right {mc['b']}, "
                     f"only ROI-aware right {mc['c']})")
    else:
        lines.append("McNemar exact, baseline vs ROI-aware: – (needs both grids)")
    lines += format_paired(result.get("paired"), threshold, "baseline", "ROI-aware")
    lines += _footnote(result)
    return "\n".join(lines)


def _footnote(result: Mapping[str, Any]) -> list[str]:
    boot = result["bootstrap"]
    maj = result["majority_class"]
    note = (
        f"Note: 95 % CI = patient-level bootstrap, percentile method, {boot['n_boot']} resamples, "
        f"seed {boot['seed']} (a percentile CI can exclude the point estimate in degenerate cases). "
        "F-score = the harmonic mean of sensitivity and specificity, the only reading that fits "
        "all of the paper's printed F-scores; F1 weighted and F1 malignant are the usual F1s, "
        "shown beside it. ROI presence only = malignant iff an ROI "
        f"exists. Majority class = {maj['label']} (from the {maj['source']} set). "
        "McNemar counts images as if independent; the sign-flip test flips each patient's net "
        "discordance as one unit, so images of one patient count once, together. "
        "'–' = undefined (0/0 or one class only)."
    )
    lines = textwrap.wrap(note, width=110)
    paper = result.get("paper_reported")
    if paper:
        def line(mode: str) -> str:
            m = paper[mode]
            return (f"sens {m['sensitivity']:.2f} spec {m['specificity']:.2f} "
                    f"F {m['f_score']:.2f} acc {m['accuracy']:.2f}")
        lines.append(f"Paper Table {paper['table']} ({paper['arch']} / {paper['dataset']}): "
                     f"baseline {line('baseline')}; ROI-aware {line('roi_aware')}.")
    return lines


def format_per_cell(result: Mapping[str, Any]) -> str:
    """One line per cell and grid: n, malignant, fallbacks, metrics at 0.5."""
    lines = [f"{'grid':<10} {'cell':<10} {'n':>5} {'malig':>6} {'fallb':>6} "
             f"{'sens':>5} {'spec':>5} {'acc':>5} {'auc':>5}"]
    for key, cells in result["per_cell"].items():
        for name, c in cells.items():
            lines.append(f"{key:<10} {name:<10} {c['n']:>5} {c['n_malignant']:>6} "
                         f"{c['n_fallback']:>6} {format_value(c['sensitivity']):>5} "
                         f"{format_value(c['specificity']):>5} {format_value(c['accuracy']):>5} "
                         f"{format_value(c['auc']):>5}")
    return "\n".join(lines)


def format_cv(result: Mapping[str, Any]) -> str:
    """Cross-validation summary lines, mean ± sd per mode and metric."""
    lines = ["Cross-validation (mean ± sd over folds):"]
    for key, metrics in (result.get("cv") or {}).items():
        parts = [f"{name} {format_value(m['mean'])} ± {format_value(m['sd'])}" for name, m in metrics.items()]
        lines.append(f"  {key}: " + "; ".join(parts))
    if result.get("cv_recipe"):
        lines.append(f"  {result['cv_recipe']}")
    return "\n".join(lines)


def format_pointing(result: Mapping[str, Any]) -> str:
    """Grad-CAM pointing per grid: hit rate against chance, and how the maps were made."""
    pointing = result.get("cam_pointing") or {}
    lines = [f"Grad-CAM pointing (malignant images with an ROI; a hit = map peak inside the ROI "
             f"dilated by {100 * pointing.get('dilation', 0.02):.0f} % of the side)"
             + (f", {pointing['method']}:" if pointing.get("method") else ":")]
    for key, title in (("baseline", "baseline"), ("roi_aware", "ROI-aware")):
        score = pointing.get(key)
        if score is not None:
            lines.append(f"  {title}: hit rate {format_value(score['hit_rate'])} of {score['n']} images "
                         f"(chance {format_value(score['chance'])})")
    return "\n".join(lines)


def format_breast_level(result: Mapping[str, Any]) -> str:
    """The per-breast table at 0.5 (systems × the paper's metrics) and its paired test;
    the rules are :data:`core.evaluate.breast.BREAST_RULES`, stored with the numbers."""
    level = result.get("breast_level") or {}
    lines = [f"Per breast ({level.get('n_breasts')} breasts, {level.get('n_malignant')} "
             "malignant; threshold 0.5): a breast is malignant when any of its images is and "
             "is called malignant when any view's call is; ROC AUC ranks by its highest view"]
    for key, title in (*TABLE_COLUMNS[:2], (PROPOSED_KEY, "ROI-aware, ROI proposed by finder"),
                       *TABLE_COLUMNS[2:]):
        if level.get(key):
            lines.append(f"  {title:<38} " + "  ".join(
                f"{m} {format_cell(level[key][m])}" for m in ("sensitivity", "specificity",
                                                            "accuracy", "roc_auc")))
    lines += ["  " + line for line in format_paired(level.get("paired"), "0.5", "baseline",
                                                    "ROI-aware")]
    if level.get("paired_proposed"):
        lines += ["  " + line for line in format_paired(level["paired_proposed"], "0.5",
                                                        "baseline", "proposed routing")]
    return "\n".join(lines)


def format_report(result: Mapping[str, Any]) -> str:
    """Everything the command line prints: both tables, per-cell, CAM pointing, CV."""
    parts = [format_paper_table(result, "0.5"), "", format_paper_table(result, "tuned", header=False),
             "", "Per cell (threshold 0.5):", format_per_cell(result)]
    if result.get("breast_level"):
        parts += ["", format_breast_level(result)]
    if result.get("cam_pointing"):
        parts += ["", format_pointing(result)]
    if result.get("roi_model") or result.get(PROPOSED_KEY):
        parts += ["", format_roi_model(dict(result))]
    if result.get("cv"):
        parts += ["", format_cv(result)]
    return "\n".join(parts)
