"""MammoRoute core: everything that is not UI. Never imports Streamlit."""
import os

from core.pixels.limits import cap_opencv_pixels

__version__ = "0.1.0"

cap_opencv_pixels()  # before anything imports cv2: OpenCV reads its limit once, at import
# Before anything imports torch: idle OpenMP threads sleep instead of spinning. On two
# cores shared with other work, spinning threads starve each other: four views with
# Grad-CAM took 4-7 s with the default policy and 0.4-0.5 s with this one (README,
# "PACS (DICOMweb)"). A value set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
