"""Case review's two ways out besides CSV and JSON: the PDF report and storing the
results back into the PACS the study came from (or any DICOMweb PACS set)."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime

import streamlit as st

from core.errors import MammoError
from core.pacs import ENV_URL
from core.predict import ViewResult
from core.review.case import CaseView
from core.review.export import export_name, study_name
from core.review.outputs import storable, study_dicom, study_pdf
from core.review.report import Call
from core.runfolder.layout import RunSummary

PACS_URL_KEY = "pacs_url"  # the page's DICOMweb URL field


def dicomweb_url() -> str | None:
    """The DICOMweb PACS results go to: the page's URL field, else ``$MAMMOROUTE_DICOMWEB_URL``."""
    url = (st.session_state.get(PACS_URL_KEY) or os.environ.get(ENV_URL) or "").strip()
    return url or None


def report_button(container, results: Sequence[ViewResult], views: Sequence[CaseView],
                  run: RunSummary, point: str, calls: Callable[[ViewResult, str], Call | None],
                  *, cam_of: str | None, opacity: float, notice: str | None, study: str,
                  show_ids: bool) -> None:
    """A download of the PDF report of what the page shows, made when it is clicked."""
    name = export_name(study_name(views, study, show_ids), datetime.now().astimezone(), "pdf")
    container.download_button(
        "Download PDF report", lambda: study_pdf(results, views, run, point, calls, cam_of=cam_of,
                                                  opacity=opacity, notice=notice, study=study,
                                                  show_ids=show_ids),
        name, "application/pdf", on_click="ignore", icon=":material/picture_as_pdf:",
        help="The four views with Grad-CAM and ROIs, the per-view and per-breast calls at "
             "this operating point, routing in words and the run's identity.")


def store_button(container, results: Sequence[ViewResult], views: Sequence[CaseView],
                 run: RunSummary, calls: Callable[[ViewResult, str], Call | None], *,
                 cam_of: str | None, opacity: float, synthetic: bool) -> None:
    """Store the results in the PACS as an SR, a SEG of the routing ROIs and Grad-CAM
    Secondary Captures; shown only when every view is DICOM and a PACS is set."""
    url = dicomweb_url()
    if url is None or not storable(results, views):
        return
    if not container.button("Store results in the PACS", icon=":material/cloud_upload:",
                            help=f"New series in this study at {url}: a Structured Report, a "
                                 "Segmentation of the ROIs that routed views, the Grad-CAM "
                                 "pictures. Nothing in the PACS is overwritten."):
        return
    from core.dicomout.store import store_results
    from core.pacs import PacsClient

    try:
        with st.spinner("Storing the results …"):
            sources, result = study_dicom(results, views, run, calls, cam_of=cam_of,
                                          opacity=opacity, synthetic=synthetic)
            report = store_results(PacsClient(url), sources, result)
    except MammoError as err:
        st.error(str(err), icon=":material/error:")
        return
    lines = report.lines()
    (st.warning if report.refused else st.success)(f"{url}:  \n" + "  \n".join(lines),
                                                   icon=":material/cloud_done:")
