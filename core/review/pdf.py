"""A one-study PDF report a colleague can read without the app.

It is written from plain inputs only: the audit record of
:func:`core.review.report.export_record` (the numbers), the hanging picture of
:func:`core.review.board.hanging_image` (the images), the synthetic-data
notice (:func:`core.phantom.synthetic_notice_text`) and, only when the caller
asks, identifiers.  So the report, the CSV / JSON downloads and the page can
never disagree: the numbers are the record's, worded by the same
:func:`core.review.readout.shown_call` as the page.

Fonts: DejaVu Sans (Debian ``fonts-dejavu-core``) when installed, for "≥",
"→" and "–" as the page shows them; otherwise the PDF core font Helvetica with
those characters spelled in Latin-1, so a fresh machine still gets a report.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fpdf import FPDF
from fpdf.fonts import FontFace

from core import __version__
from core.grid import VIEWS
from core.review.readout import shown_call
from core.review.report import GIVEN_AS, GRIDS

NOT_FOR_DIAGNOSIS = "Research software, not for diagnosis."
FONT_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts/truetype/dejavu"),)
FONT_FILES: dict[str, str] = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
GRID_NAMES: dict[str, str] = {"roi_aware": "ROI-aware", "baseline": "Baseline"}
LATIN1_SPELLING = str.maketrans({"≥": ">=", "≤": "<=", "→": "->", "–": "-", "—": "-",
                                 "“": '"', "”": '"', "‘": "'", "’": "'", "…": "...",
                                 "×": "x", "•": "-"})
JPEG_QUALITY = 90  # the picture is a view of the result, not the image of record
RED, ORANGE, GREY = (183, 28, 28), (255, 236, 179), (90, 90, 90)


def unicode_font() -> dict[str, Path] | None:
    """Regular and bold DejaVu Sans files when installed, else None (core font used)."""
    for folder in FONT_DIRS:
        files = {style: folder / name for style, name in FONT_FILES.items()}
        if all(f.is_file() for f in files.values()):
            return files
    return None


class _Report(FPDF):
    """A4 pages whose footer repeats the intended use (and "synthetic" where it applies)."""

    def __init__(self, footer: str, font: dict[str, Path] | None) -> None:
        super().__init__(format="A4")
        self.footer_text = footer
        self.unicode = font is not None
        self.family = "DejaVu" if font else "Helvetica"
        for style, path in (font or {}).items():
            self.add_font("DejaVu", style, str(path))
        self.set_margins(14, 12, 14)
        self.set_auto_page_break(True, 16)

    def say(self, text: str) -> str:
        """``text`` as the page's font can set it."""
        if self.unicode:
            return text
        return text.translate(LATIN1_SPELLING).encode("latin-1", "replace").decode("latin-1")

    def style(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def para(self, text: str, size: float = 9, bold: bool = False, h: float = 4.4) -> None:
        self.style(size, bold)
        self.multi_cell(0, h, self.say(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.ln(2.5)
        self.style(11.5, True)
        self.cell(0, 6.5, self.say(text), new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        self.set_y(-11)
        self.style(7.5)
        self.set_text_color(*GREY)
        self.cell(0, 5, self.say(f"{self.footer_text} · page {self.page_no()}/{{nb}}"),
                  align="C")
        self.set_text_color(0)


def probability_text(p: float | None, threshold: float | None, call: str | None) -> tuple[str, str, str]:
    """``(P, threshold, call)`` as the page shows them: rounded so they never contradict
    the call (:func:`shown_call`); ``–`` where the grid gave no probability."""
    if p is None or threshold is None:
        return "–", "–", "–"
    shown = shown_call(p, threshold)
    return shown.probability, shown.threshold, call or shown.word


def roi_text(row: Mapping[str, Any]) -> str:
    """Where a view's ROI came from, as the per-view table's ROI column says it."""
    source = row.get("roi_source")
    if source == "proposed":
        p = row.get("roi_probability")
        found = "proposed" if row.get("roi") else "none found"
        return f"{found} (finder {'–' if p is None else f'{100 * p:.0f} %'})"
    if source == "mask":
        return GIVEN_AS.get(row.get("roi_given_as") or "", "a mask") if row.get("roi") \
            else "empty mask"
    return "none"


def hanging_sorted(views: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in hanging order (RCC, LCC, RMLO, LMLO), views not named last."""
    return sorted(views, key=lambda v: VIEWS.index(v["view"]) if v["view"] in VIEWS else len(VIEWS))


def view_rows(record: Mapping[str, Any]) -> list[list[str]]:
    """The per-view table: view, ROI, then per grid the model, P, threshold and call."""
    rows = []
    for v in hanging_sorted(record["views"]):
        row = [v["view"], roi_text(v)]
        for grid in GRIDS:
            cell = v.get(f"cell_{grid}") or "–"
            if grid == "roi_aware" and v.get("fallback"):
                cell += " (fallback)"
            row += [cell, *probability_text(v.get(f"p_malignant_{grid}"),
                                            v.get(f"threshold_{grid}"), v.get(f"call_{grid}"))]
        rows.append(row)
    return rows


def breast_rows(record: Mapping[str, Any]) -> list[list[str]]:
    """The per-breast table: per grid the deciding view, its P against its threshold, the call."""
    rows = []
    for b in record["breasts"]:
        row = [b["breast"], b.get("views") or "–"]
        for grid in GRIDS:
            p, t = b.get(f"p_{grid}"), b.get(f"threshold_{grid}")
            if p is None or t is None:
                row += ["–", "–"]
                continue
            shown = shown_call(p, t)
            row += [f"{shown.probability} {shown.relation} {shown.threshold} "
                    f"({b.get(f'view_{grid}')})", b.get(f"call_{grid}") or shown.word]
        rows.append(row)
    return rows


def routing_lines(record: Mapping[str, Any]) -> list[str]:
    """Per view, in words: why it went where it went, fallbacks, boxes, no-call reasons,
    warnings and errors."""
    lines = []
    for v in hanging_sorted(record["views"]):
        parts = [v.get("why") or ""]
        if v.get("fallback") and v.get("fallback_reason"):
            parts.append(f"Fallback: {v['fallback_reason']}.")
        if v.get("roi_boxes"):
            boxes = "; ".join("({}, {})–({}, {})".format(*b) for b in v["roi_boxes"])
            parts.append(f"ROI box{'es' if len(v['roi_boxes']) > 1 else ''} in image pixels: "
                         f"{boxes}.")
        for grid in GRIDS:
            if v.get(f"uninformative_{grid}"):
                parts.append(f"{GRID_NAMES[grid]} makes no call: "
                             f"{v[f'uninformative_{grid}']}.")
        if v.get("warnings"):
            parts.append(f"Warnings: {v['warnings']}.")
        if v.get("error"):
            parts.append(f"Error: {v['error']}.")
        lines.append(f"{v['view']}: " + " ".join(p.strip() for p in parts if p))
    return lines


def _jpeg(rgb: np.ndarray) -> io.BytesIO:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the hanging picture could not be encoded")
    return io.BytesIO(data.tobytes())


def _table(pdf: _Report, header: Sequence[str], rows: Sequence[Sequence[str]],
           widths: Sequence[float], size: float = 7.5) -> None:
    pdf.style(size)
    head = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))
    with pdf.table(col_widths=tuple(widths), width=pdf.epw, text_align="LEFT",
                   headings_style=head, line_height=size * 0.5, padding=0.8) as table:
        for values in [header, *rows]:
            line = table.row()
            for value in values:
                line.cell(pdf.say(str(value)))


def write_report(record: Mapping[str, Any], hanging: np.ndarray | None,
                 notice: str | None = None, *, cam_of: str = "roi_aware",
                 opacity: float = 0.5, scale_bar: np.ndarray | None = None,
                 empty_cam: Sequence[str] = (),
                 identifiers: Mapping[str, str] | None = None,
                 show_identifiers: bool = False) -> bytes:
    """The report as PDF bytes (the caller writes them atomically).

    ``record`` is :func:`~core.review.report.export_record`'s, already free of
    file names; ``hanging`` the four-view picture drawn with ``cam_of``'s
    Grad-CAM at ``opacity``, whose map was empty for the views in ``empty_cam``;
    ``notice`` the synthetic-data notice, if any.
    ``identifiers`` (label → file name, study id …) are printed only with
    ``show_identifiers``, as the CSV / JSON downloads carry them only then.
    """
    footer = "MammoRoute report · " + NOT_FOR_DIAGNOSIS.rstrip(".").lower()
    if notice:
        footer = "SYNTHETIC DATA · " + footer
    pdf = _Report(footer, unicode_font())
    pdf.set_title("MammoRoute study report")
    pdf.set_creator(f"MammoRoute {__version__}")
    pdf.add_page()
    pdf.style(16, True)
    pdf.cell(0, 8, "MammoRoute study report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*RED)
    pdf.para(NOT_FOR_DIAGNOSIS, 11, True, 6)
    pdf.set_text_color(0)
    if notice:
        pdf.set_fill_color(*ORANGE)
        pdf.style(9, True)
        pdf.multi_cell(0, 4.6, pdf.say(f"⚠ {notice}" if pdf.unicode else notice), fill=True,
                       border=0, padding=1.5, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_fill_color(255)
        pdf.ln(1.5)
    point = record["operating_point"]
    pdf.para(f"Run {record['run']} · {record.get('arch')} at {record.get('img_size')} px · "
             f"MammoRoute {__version__} · {record['date']}")
    pdf.para(f"Operating point: {point['name']} ({point['rule']}).", bold=True)
    if show_identifiers and identifiers:
        pdf.para("Identifiers (shown on request):", 8, True, 3.8)
        for key, value in identifiers.items():
            pdf.para(f"{key}: {value}", 8, h=3.8)
    if hanging is not None:
        proposed = [v["view"] for v in hanging_sorted(record["views"])
                    if v.get("roi_source") == "proposed" and v.get("roi")]
        _picture(pdf, hanging, cam_of, opacity, scale_bar, empty_cam, proposed)
    pdf.heading("Per view")
    sub = ["view", "ROI"] + [f"{GRID_NAMES[g]} {k}" if k == "model" else k
                             for g in GRIDS for k in ("model", "P(mal.)", "threshold", "call")]
    _table(pdf, sub, view_rows(record), (10, 32, 22, 16, 16, 16, 22, 16, 16, 16))
    pdf.ln(1)
    pdf.para("P(mal.): the model's calibrated probability of malignancy, called malignant at "
             "or above the threshold of the operating point.", 7.5, h=3.6)
    pdf.heading("Per breast")
    _table(pdf, ["breast", "views", "ROI-aware: deciding view", "ROI-aware call",
                 "Baseline: deciding view", "Baseline call"], breast_rows(record),
           (14, 26, 40, 20, 40, 20))
    pdf.ln(1)
    pdf.para(record["breast_rule"], 8, h=3.8)
    pdf.heading("Routing and fallbacks")
    for line in routing_lines(record):
        pdf.para(line, 8.5, h=4.2)
        pdf.ln(0.6)
    pdf.heading("Run identity")
    pdf.para("SHA-256 of every model that served this study:", 8.5)
    hashes = dict(record.get("weights_sha256") or {})
    if record.get("roi_finder_sha256"):
        hashes["ROI finder"] = record["roi_finder_sha256"]
    _table(pdf, ["model", "SHA-256"], sorted(hashes.items()), (30, 152), size=7)
    pdf.ln(1)
    pdf.para("Trained on synthetic data: "
             f"{'yes' if record.get('trained_on_synthetic_data') else 'no'}.", 8.5)
    return bytes(pdf.output())


def _picture(pdf: _Report, rgb: np.ndarray, cam_of: str, opacity: float,
             scale_bar: np.ndarray | None, empty_cam: Sequence[str],
             proposed: Sequence[str]) -> None:
    """The hanging, centred, as large as leaves the tables room, and its legend."""
    pdf.ln(2)
    h_mm = 112.0
    w_mm = min(pdf.epw, h_mm * rgb.shape[1] / rgb.shape[0])
    h_mm = w_mm * rgb.shape[0] / rgb.shape[1]
    pdf.image(_jpeg(rgb), x=pdf.l_margin + (pdf.epw - w_mm) / 2, y=pdf.get_y(), w=w_mm, h=h_mm)
    pdf.set_y(pdf.get_y() + h_mm + 1.5)
    legend = (f"Grad-CAM of the {GRID_NAMES.get(cam_of, cam_of)} grid at {100 * opacity:.0f} % "
              "opacity, scaled per view: low → high push towards malignant. " if opacity > 0
              else "Grad-CAM off. ")
    legend += ("ROI outlines in cyan. Right breast on the left, as hung in case review; each "
               "view as the model read it (breast crop).")
    if proposed:  # finder boxes are in the source image's pixels, not the crop drawn here
        legend += (f" The ROI finder's proposals ({', '.join(proposed)}) are not outlined; "
                   "their boxes are under Routing.")
    if opacity > 0 and empty_cam:
        legend += (f" Grad-CAM is empty for {', '.join(empty_cam)}: nothing in "
                   f"{'it' if len(empty_cam) == 1 else 'them'} pushed the model towards malignant.")
    if scale_bar is not None:
        bar_w = 30.0
        pdf.image(_jpeg(scale_bar), x=pdf.l_margin, y=pdf.get_y() + 0.8, w=bar_w,
                  h=bar_w * scale_bar.shape[0] / scale_bar.shape[1])
        pdf.set_x(pdf.l_margin + bar_w + 3)
        pdf.style(7.5)
        pdf.multi_cell(0, 3.6, pdf.say(legend), align="L", new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.para(legend, 7.5, h=3.6)
