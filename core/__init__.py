"""MammoRoute core: everything that is not UI. Never imports Streamlit."""

from core.pixels.limits import cap_opencv_pixels

__version__ = "0.1.0"

cap_opencv_pixels()  # before anything imports cv2: OpenCV reads its limit once, at import
