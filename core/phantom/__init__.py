"""Synthetic mammography studies written in the real VinDr-Mammo / CDD-CESM layouts.

No mammography data ships with an installable package, so the app's demo and
the adapters' tests use this seeded phantom.  It writes the *real* on-disk
layout of a profile (README, "Data"), so the
adapters that read real data read it unchanged, and its class balance and
ROI-presence rates follow the paper's Tables 1-4 *by construction* (exact
allocation by rounding, then a seeded shuffle), not by luck.

Everything written is labelled synthetic (PatientName ``PHANTOM^0001``,
InstitutionName / Manufacturer ``MammoRoute synthetic phantom``, a
``phantom.json`` beside the data).  It is a fixture and a demo, never
evidence about patients.

Per breast, both views share the label; a lesion shows in both views of its
breast.  The modules, from the bottom up:

- :mod:`~core.phantom.profiles`: dataset profiles and argument vocabularies;
- :mod:`~core.phantom.noise`, :mod:`~core.phantom.anatomy`,
  :mod:`~core.phantom.lesions`, :mod:`~core.phantom.render`: drawing a view;
- :mod:`~core.phantom.plan`: what each breast is, allocated per profile;
- :mod:`~core.phantom.dicom_file`, :mod:`~core.phantom.files`,
  :mod:`~core.phantom.pool`: writing files, rendering in parallel;
- :mod:`~core.phantom.vindr`, :mod:`~core.phantom.cddcesm`: the two layouts;
- :mod:`~core.phantom.summary`, :mod:`~core.phantom.write`: what was written,
  the entry point, and :func:`is_synthetic`, the marker test every part of the app
  uses to call a dataset synthetic.
"""
from __future__ import annotations

from core.phantom.cddcesm import CDD_CM_DIR, CDD_DM_DIR, CDD_SEGMENTATIONS, CDD_SHEET
from core.phantom.lesions import Lesion
from core.phantom.profiles import DIFFICULTIES, PROFILES, difficulty_value
from core.phantom.render import render_view
from core.phantom.write import (
    SYNTHETIC_TEXT,
    YOURS_ON_SYNTHETIC_TEXT,
    is_synthetic,
    synthetic_header,
    synthetic_notice_text,
    write_phantom,
)

__all__ = [
    "CDD_CM_DIR", "CDD_DM_DIR", "CDD_SEGMENTATIONS", "CDD_SHEET", "DIFFICULTIES", "PROFILES",
    "Lesion", "SYNTHETIC_TEXT", "YOURS_ON_SYNTHETIC_TEXT", "difficulty_value", "is_synthetic",
    "render_view", "synthetic_header", "synthetic_notice_text", "write_phantom",
]
