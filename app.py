"""MammoRoute: the Streamlit entry point (``streamlit run app.py``).

Navigation and the shared sidebar only; all work is done by ``core``.  Each
page in ``pages/`` starts with ``ui.common.ensure_app_navigation()``, so a
bookmark opened first on a fresh server still goes through this script.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ui.common import app_page_run  # noqa: E402
from ui.sidebar import render_sidebar  # noqa: E402

st.set_page_config(page_title="MammoRoute", page_icon=":material/radiology:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/case_review.py", title="Case review", icon=":material/radiology:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
]

page = st.navigation(PAGES)
render_sidebar()
with app_page_run():
    page.run()
