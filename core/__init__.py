"""MammoRoute core: everything that is not UI. Never imports Streamlit."""

__version__ = "0.1.0"
