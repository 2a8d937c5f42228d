"""Case review's PACS source: the DICOMweb URL, a study search (date, accession), the
found studies, and the opened study with a picker where a view has more than one image."""
from __future__ import annotations

import atexit
import os

import pandas as pd
import streamlit as st

from core.errors import MammoError, PacsError
from core.grid import VIEWS
from core.pacs import ENV_URL, PacsClient
from core.pacs.demo import DemoPacs, fill, start_demo_pacs
from core.pixels.spec import PreprocessParams
from core.review.case import CaseView
from core.review.pacs_study import PacsStudy, image_label, open_study, study_option, study_table
from core.runfolder.layout import RunSummary, data_root
from core.wording import count
from ui.common import keep, run_dataset_table

URL = "pacs_url"
FOUND = "pacs_found"  # (url, [StudyRow]) of the last search
STUDY = "pacs_study"  # the opened PacsStudy
ERROR = "pacs_error"  # the last PACS error, one line, shown until the next PACS action
FILLED = "pacs_filled"  # what the demo PACS was filled with, in words
DEMO_FOLDER = "pacs-demo"  # under the data root: the demo PACS's database and files


@st.cache_resource(show_spinner=False)
def _demo_servers() -> dict[str, DemoPacs]:
    """The app server's demo PACS (one per app process, shared by its sessions)."""
    return {}


def _start_demo(run: RunSummary) -> None:
    """Start the demo PACS if it is not running, store the run's test studies in it,
    point the URL field at it and search it."""
    state = st.session_state
    state.pop(ERROR, None)
    servers = _demo_servers()
    try:
        with st.spinner("Starting the local PACS and storing the phantom's test studies …"):
            pacs = servers.get("demo")
            if pacs is None or not pacs.running():
                pacs = servers["demo"] = start_demo_pacs(data_root() / DEMO_FOLDER, os.getpid())
                atexit.register(pacs.stop)  # and serve --stop-with: nothing outlives the app
            df = run_dataset_table(run)
            report = fill(pacs.url, df.loc[df["split"] == "test", "image_path"])
    except (PacsError, MammoError) as err:
        return _fail(err)
    state[URL] = pacs.url
    state[FILLED] = (f"Local PACS (loopback only, SYNTHETIC PHANTOM studies) at {pacs.url}: "
                     f"{count(len(report.stored), 'test image')} of run {run.name} stored"
                     + (f", {len(report.refused)} refused" if report.refused else "") + ".")
    _search(pacs.url)


def demo_button(run: RunSummary) -> None:
    """Offered on a synthetic run whose phantom is on this computer."""
    if not (run.synthetic and run.info.get("dataset_path")):
        return
    st.button("Start a local PACS with the phantom's test studies", icon=":material/dns:",
              on_click=_start_demo, args=(run,),
              help="Runs `python -m core pacs serve` (Orthanc, reachable from this computer "
                   "only) and stores the DICOMs of this run's test split in it. It stops "
                   "when the app stops.")
    if FILLED in st.session_state:
        st.caption(st.session_state[FILLED])


def _fail(err: MammoError) -> None:
    st.session_state[ERROR] = str(err)


def _search(url: str) -> None:
    state = st.session_state
    state.pop(ERROR, None)
    try:
        rows = PacsClient(url).find_studies(state.get("pacs_from"), state.get("pacs_to"),
                                            (state.get("pacs_accession") or "").strip() or None)
    except PacsError as err:
        state.pop(FOUND, None)
        return _fail(err)
    state[FOUND] = (url, rows)


def _open(url: str, study_uid: str, spec: PreprocessParams) -> None:
    state = st.session_state
    state.pop(ERROR, None)
    try:
        with st.spinner("Retrieving the study's mammograms …"):
            state[STUDY] = open_study(PacsClient(url), study_uid, spec)
    except PacsError as err:
        _fail(err)


def search_form(spec: PreprocessParams, show_ids: bool) -> None:
    """URL, date range, accession and Search; the found studies and Open study."""
    keep(URL, os.environ.get(ENV_URL, ""))
    url = st.text_input("DICOMweb URL", key=URL, placeholder="http://pacs.example.org/dicom-web",
                        help=f"Default: ${ENV_URL}. Credentials for a PACS that asks for them "
                             "come from the environment only (MAMMOROUTE_DICOMWEB_USER and "
                             "_PASSWORD, or _TOKEN) and are never shown.").strip()
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    c1.date_input("Study date from", value=None, key="pacs_from", format="YYYY-MM-DD")
    c2.date_input("Study date to", value=None, key="pacs_to", format="YYYY-MM-DD")
    c3.text_input("Accession number", key="pacs_accession",
                  help="Exact, or with * and ? as wildcards; empty: any.")
    c4.button("Search", on_click=_search, args=(url,), disabled=not url,
              icon=":material/search:")
    if ERROR in st.session_state:
        st.error(st.session_state[ERROR], icon=":material/error:")
    found = st.session_state.get(FOUND)
    if not found:
        return
    searched, rows = found
    if not rows:
        st.info(f"No study in {searched} matches the search.")
        return
    st.caption(f"{count(len(rows), 'study', 'studies')} in {searched}, newest first"
               + ("" if show_ids else "; patient names and IDs hidden (Show identifiers)"))
    st.table(pd.DataFrame(study_table(rows, show_ids)))
    pick = st.selectbox("Study to open", range(len(rows)), key="pacs_pick",
                        format_func=lambda i: study_option(rows[i], i, show_ids))
    st.button("Open study", type="secondary", icon=":material/folder_open:", on_click=_open,
              args=(searched, rows[pick if pick is not None else 0].study_uid, spec))


def image_pickers(study: PacsStudy) -> None:
    """Where a view has more than one image (repeats, extra views): pick which hangs,
    newest first; a new pick is retrieved at once."""
    places = [p for p in VIEWS if len(study.candidates(p)) > 1]
    if not places:
        return
    st.caption("More than one image for " + ", ".join(places) + ": the newest hangs; pick "
               "another below.")
    cols = st.columns(len(places))
    for col, place in zip(cols, places):
        options = study.candidates(place)
        labels = {im.sop_uid: image_label(im, newest=k == 0 and im.view == place)
                  for k, im in enumerate(options)}
        key = f"pacs-pick-{place}-{study.study_uid}"
        if key not in st.session_state:
            st.session_state[key] = study.picked.get(place)
        chosen = col.selectbox(f"{place} image", [*labels, None], key=key,
                               format_func=lambda uid, names=labels: names.get(uid, "none"))
        before = study.picked.get(place)
        if chosen != before:
            study.pick(place, chosen)
            try:
                with st.spinner("Retrieving the picked image …"):
                    study.fetch(PacsClient(study.url))
            except PacsError as err:
                study.pick(place, before)
                st.error(str(err), icon=":material/error:")


def pacs_views(run: RunSummary, spec: PreprocessParams, show_ids: bool) -> list[CaseView]:
    """The PACS source of case review: search, open, pick; the opened study's views."""
    demo_button(run)
    search_form(spec, show_ids)
    study: PacsStudy | None = st.session_state.get(STUDY)
    if study is None:
        return []
    if study.spec != spec:  # another run's preprocessing: retrieve and decode again
        _open(study.url, study.study_uid, spec)
        study = st.session_state.get(STUDY)
        if study is None or study.spec != spec:
            return []
    if study.images.ignored:
        st.caption(f"Not hung: {count(len(study.images.ignored), 'object')} of the study that "
                   "are not mammograms for presentation (reports, presentation states, "
                   "secondary captures).")
    image_pickers(study)
    return study.views()
