"""What the phantom imitates: the two dataset profiles and the vocabularies
its arguments use.

A profile holds the composition targets of one dataset, taken from the paper's
Tables 1-4, so a phantom's class balance and ROI rates match the tables by
construction (see :mod:`core.phantom.plan`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.errors import MammoError

VIEWS: tuple[str, ...] = ("RCC", "LCC", "RMLO", "LMLO")
DIFFICULTIES: dict[str, float] = {"easy": 0.0, "obvious": 0.15, "moderate": 0.5, "subtle": 0.85}
DENSITIES: tuple[str, ...] = ("A", "B", "C", "D")
SYNTHETIC_NAME = "MammoRoute synthetic phantom"  # the label every written file carries


@dataclass(frozen=True)
class Profile:
    """Composition targets of one dataset, taken from the paper's tables.

    Rates are per *image* among labelled images (benign + malignant), as the
    tables count them.  ``excluded_fraction`` is the share of breasts the
    adapters drop (VinDr BI-RADS 1, CDD-CESM Normal).
    """

    name: str
    malignant_fraction: float
    roi_if_malignant: float
    roi_if_benign: float
    excluded_fraction: float
    test_fraction: float | None
    aspect: float
    density_weights: tuple[float, float, float, float]
    high_birads_benign: float
    high_birads_malignant: float
    paper_tables: dict[str, dict[str, int]] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    # Tables 1-2: 988 of 6594 malignant; ROI on 952/988 malignant, 816/5606 benign;
    # 5276/1318 train/test.  Real VinDr has ~67 % BI-RADS 1 breasts; the phantom
    # keeps one in three, so a 200-study demo still has ~90 malignant images.
    "vindr": Profile(
        name="vindr", malignant_fraction=988 / 6594, roi_if_malignant=952 / 988,
        roi_if_benign=816 / 5606, excluded_fraction=1 / 3, test_fraction=1318 / 6594,
        aspect=2800 / 3518, density_weights=(0.02, 0.12, 0.70, 0.16),
        high_birads_benign=0.17, high_birads_malignant=0.23,
        paper_tables={"malignant": {"train": 790, "test": 198, "roi": 952, "noroi": 36},
                      "benign": {"train": 4486, "test": 1120, "roi": 816, "noroi": 4790}}),
    # Tables 3-4: 331 / 331; ROI on 326/331 malignant, 322/331 benign.  The files
    # carry no split (the adapter makes the 10:1 one).  Normal: 341 of 1003 DM images.
    "cddcesm": Profile(
        name="cddcesm", malignant_fraction=0.5, roi_if_malignant=326 / 331,
        roi_if_benign=322 / 331, excluded_fraction=341 / 1003, test_fraction=None,
        aspect=0.62, density_weights=(0.10, 0.35, 0.40, 0.15),
        high_birads_benign=0.35, high_birads_malignant=0.45,
        paper_tables={"malignant": {"train": 300, "test": 31, "roi": 326, "noroi": 5},
                      "benign": {"train": 300, "test": 31, "roi": 322, "noroi": 9}}),
}


def difficulty_value(difficulty: float | str) -> float:
    """Map "easy" / "obvious" / "moderate" / "subtle" or a number to 0 (easy) .. 1 (subtle)."""
    if isinstance(difficulty, str):
        key = difficulty.strip().lower()
        if key in DIFFICULTIES:
            return DIFFICULTIES[key]
        try:
            difficulty = float(key)
        except ValueError:
            raise MammoError(f"unknown difficulty {difficulty!r}; expected one of "
                             f"{', '.join(DIFFICULTIES)} or a number in 0..1") from None
    value = float(difficulty)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise MammoError(f"difficulty {value} is outside 0..1")
    return value
