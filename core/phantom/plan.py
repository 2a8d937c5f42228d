"""Composition planning: which breasts are normal, benign or malignant, which
views carry an ROI, and which lesions each breast holds.

Labels and ROI patterns are *allocated* exactly (rounding, then a seeded
shuffle), not drawn at random, so a phantom's composition is the paper's
tables by construction.  Label noise of the real data is kept on purpose, at
the tables' rates: malignant images without ROI (the lesion faint in a dense
breast, or plainly visible but not boxed) and benign images with one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from core.phantom.lesions import Lesion
from core.phantom.profiles import DENSITIES, Profile


@dataclass(frozen=True)
class BreastPlan:
    """What one breast is: its label, which views carry an ROI, its lesions."""

    label: str  # normal | benign | malignant
    birads: str  # VinDr style number, or CDD-CESM "4$2"-style text
    roi_views: frozenset[str]
    lesions: tuple[Lesion, ...]
    extra_category: bool = False


def _alloc(total: int, fraction: float) -> int:
    return int(round(total * fraction))


def _roi_patterns(images: int, with_roi: int, both_share: float) -> list[int]:
    """Split ``images`` (2 per breast) into breasts with 2, 1 or 0 annotated
    views so that exactly ``with_roi`` images carry an ROI."""
    breasts = images // 2
    with_roi = min(with_roi, images)
    if with_roi > breasts:  # more than one per breast: at least this many pairs
        both = with_roi - breasts
    else:
        both = min(with_roi // 2, int(round(with_roi * both_share / 2)))
    single = with_roi - 2 * both
    return [2] * both + [1] * single + [0] * (breasts - both - single)


def _malignant_patterns(images: int, with_roi: int) -> list[int]:
    """Missing malignant ROIs: a third hidden in both views (dense breast), the
    rest missing in one view only."""
    breasts = images // 2
    missing = images - with_roi
    none = max(missing - breasts, missing // 3)
    single = missing - 2 * none
    both = breasts - none - single
    return [2] * both + [1] * single + [0] * none


def _malignant_lesions(rng: np.random.Generator, annotated: int) -> tuple[Lesion, ...]:
    """A spiculated mass, a calcification cluster or both, close together;
    faint when no view of the breast is annotated (hidden in dense tissue)."""
    kind = rng.choice(["mass", "calc", "both"], p=[0.55, 0.25, 0.20])
    hidden = 0.4 if annotated == 0 else 1.0
    depth, offset = rng.uniform(0.3, 0.8), rng.uniform(-0.8, 0.8)
    made = []
    if kind in ("mass", "both"):
        made.append(Lesion("malignant_mass", depth, offset, rng.uniform(0.75, 1.35),
                           int(rng.integers(2 ** 31)), hidden))
    if kind in ("calc", "both"):
        shift = rng.uniform(-0.15, 0.15) if kind == "both" else 0.0
        made.append(Lesion("calcifications", float(np.clip(depth + shift, 0.2, 0.9)),
                           float(np.clip(offset + shift, -0.9, 0.9)), rng.uniform(0.8, 1.3),
                           int(rng.integers(2 ** 31)), hidden))
    return tuple(made)


def _benign_lesions(rng: np.random.Generator, annotated: int) -> tuple[Lesion, ...]:
    """A circumscribed mass (or coarse calcifications) where a box is drawn;
    where none is, usually nothing, sometimes unboxed coarse calcifications."""
    if annotated == 0 and rng.random() > 0.3:
        return ()  # most benign breasts without a box show nothing worth boxing
    kind = "benign_mass" if rng.random() < 0.85 else "benign_calcifications"
    if annotated == 0:
        kind, scale = "benign_calcifications", rng.uniform(0.6, 1.0)
    else:
        scale = rng.uniform(0.7, 1.4)
    return (Lesion(kind, rng.uniform(0.25, 0.85), rng.uniform(-0.8, 0.8), scale,
                   int(rng.integers(2 ** 31))),)


def _birads(rng: np.random.Generator, profile: Profile, label: str) -> str:
    """Breast BI-RADS: 1 normal, 2-3 benign, 4-5 malignant (the paper's mapping)."""
    if label == "normal":
        return "1"
    if label == "benign":
        return "3" if rng.random() < profile.high_birads_benign else "2"
    return "5" if rng.random() < profile.high_birads_malignant else "4"


def plan_breasts(profile: Profile, studies: int, rng: np.random.Generator) -> list[BreastPlan]:
    """Allocate labels and ROI patterns to ``2 * studies`` breasts exactly, then
    shuffle them: the composition is the tables' by construction."""
    breasts = 2 * studies
    excluded = _alloc(breasts, profile.excluded_fraction)
    labelled = breasts - excluded
    malignant = _alloc(labelled, profile.malignant_fraction)
    benign = labelled - malignant
    m_pat = _malignant_patterns(2 * malignant, _alloc(2 * malignant, profile.roi_if_malignant))
    b_pat = _roi_patterns(2 * benign, _alloc(2 * benign, profile.roi_if_benign), 0.85)
    plans: list[BreastPlan] = []
    for n in m_pat:
        views = _pattern_views(rng, n)
        lesions = _malignant_lesions(rng, n)
        plans.append(BreastPlan("malignant", _birads(rng, profile, "malignant"), views, lesions,
                                extra_category=bool(rng.random() < 0.1)))
    for n in b_pat:
        plans.append(BreastPlan("benign", _birads(rng, profile, "benign"), _pattern_views(rng, n),
                                _benign_lesions(rng, n)))
    plans += [BreastPlan("normal", "1", frozenset(), ()) for _ in range(excluded)]
    edge_slots = [i for i, p in enumerate(plans) if p.roi_views and p.lesions][:: 40]
    for i in edge_slots:  # a few lesions against the chest wall: boxes slightly off-image
        p = plans[i]
        plans[i] = replace(p, lesions=(replace(p.lesions[0], at_edge=True),) + p.lesions[1:])
    return [plans[i] for i in rng.permutation(len(plans))]


def _pattern_views(rng: np.random.Generator, annotated: int) -> frozenset[str]:
    """Which views of a breast carry its ROI, given how many do."""
    if annotated == 2:
        return frozenset({"CC", "MLO"})
    if annotated == 1:
        return frozenset({"CC"}) if rng.random() < 0.5 else frozenset({"MLO"})
    return frozenset()


def view_lesions(plan: BreastPlan, position: str, rng: np.random.Generator) -> tuple[Lesion, ...]:
    """The breast's lesions as one projection shows them: the MLO sees another
    offset.  A malignant lesion unannotated in one view is, for half of the
    breasts, drawn faint there (hidden by overlying tissue) and for the other
    half drawn plainly (seen but not boxed), the two ways ROIs go missing."""
    out = []
    for lesion in plan.lesions:
        offset = lesion.offset
        if position == "MLO":
            offset = float(np.clip(-0.6 * lesion.offset + rng.uniform(-0.3, 0.3), -0.9, 0.9))
        consp = lesion.conspicuity
        if plan.label == "malignant" and plan.roi_views and position not in plan.roi_views:
            consp = 0.45 if lesion.shape_seed % 2 else 1.0
        out.append(replace(lesion, offset=offset, conspicuity=consp))
    return tuple(out)


def study_densities(rng: np.random.Generator, profile: Profile, plans: list[BreastPlan],
                    studies: int) -> list[str]:
    """A density per study; a malignancy with no ROI anywhere sits in a dense breast."""
    out = []
    for i in range(studies):
        d = str(rng.choice(DENSITIES, p=profile.density_weights))
        if any(p.label == "malignant" and not p.roi_views for p in plans[2 * i: 2 * i + 2]):
            d = "D" if rng.random() < 0.7 else "C"
        out.append(d)
    return out


def split_studies(keys: list[tuple], fraction: float | None, rng: np.random.Generator) -> list[str]:
    """Per-study train/test split, stratified by construction: sort studies by
    their composition, then send every k-th to test from a seeded start."""
    if fraction is None:
        return [""] * len(keys)
    order = sorted(range(len(keys)), key=lambda i: (keys[i], rng.random()))
    start = rng.random()
    split = [""] * len(keys)
    for rank, i in enumerate(order):
        crosses = math.floor((rank + 1) * fraction + start) > math.floor(rank * fraction + start)
        split[i] = "test" if crosses else "train"
    return split
