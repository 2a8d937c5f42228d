"""Small shared helpers of the Streamlit pages: formatting, sidebar, figures, images."""
