"""Patient-grouped, label-stratified, seeded splits and folds.

No patient may sit on both sides of a split: two views of one breast are
nearly the same picture, so a model would be tested on what it has seen.
Stratifying by label keeps a small test set's class balance close to the
whole set's.  One implementation (scikit-learn's ``StratifiedGroupKFold``)
serves the CDD-CESM train/test split, a validation split and K-fold CV.

Stratification uses each image's label while keeping each patient's images
together, so image-level class balance per fold is what is matched (Tables
1 and 3 of the paper count images).  The result depends only on the
(patient, label) pairs and the seed, not on row order.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def grouped_folds(df: pd.DataFrame, k: int, seed: int = 0,
                  group: str = "patient_id", label: str = "label") -> pd.Series:
    """Fold number ``0..k-1`` of every row (``int``, indexed like ``df``).

    Rows of one patient share a fold.  Needs at least ``k`` patients.
    """
    k = int(k)
    groups = df[group].astype(str).to_numpy()
    labels = df[label].astype(str).to_numpy()
    n_groups = len(np.unique(groups))
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    if n_groups < k:
        raise ValueError(f"cannot make {k} patient-grouped folds from {n_groups} patient(s)")
    order = np.lexsort((labels, groups))
    folds = np.empty(len(df), dtype=int)
    splitter = _splitter(k, int(seed), labels)
    with warnings.catch_warnings():
        # "least populated class has fewer members than n_splits" is expected on small sets
        warnings.simplefilter("ignore", UserWarning)
        parts = splitter.split(np.zeros(len(df)), labels[order], groups[order])
        for fold, (_, test_idx) in enumerate(parts):
            folds[order[test_idx]] = fold
    return pd.Series(folds, index=df.index, name="fold")


def _splitter(k: int, seed: int, labels: np.ndarray):
    """Stratified when any class has at least ``k`` images; on smaller sets, where
    no fold can hold every class anyway, grouped and shuffled only."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold  # slow import

    if np.unique(labels, return_counts=True)[1].max() >= k:
        return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return GroupKFold(n_splits=k, shuffle=True, random_state=seed)


def grouped_split(df: pd.DataFrame, test_fraction: float, seed: int = 0,
                  group: str = "patient_id", label: str = "label") -> pd.Series:
    """``"train"`` / ``"test"`` for every row (indexed like ``df``).

    The test side is one fold of ``round(1 / test_fraction)`` grouped folds,
    so ``1/11`` gives the paper's 10:1.  With fewer patients than that the
    folds shrink to one patient each (at least one patient is tested); a
    single patient cannot be split and raises ``ValueError``.
    """
    if not 0.0 < float(test_fraction) <= 0.5:
        raise ValueError(f"test_fraction must be in (0, 0.5], got {test_fraction}")
    n_groups = df[group].astype(str).nunique()
    if n_groups < 2:
        raise ValueError(f"cannot split {n_groups} patient(s) into train and test")
    k = min(max(2, round(1.0 / float(test_fraction))), n_groups)
    folds = grouped_folds(df, k, seed, group=group, label=label)
    return folds.map(lambda f: "test" if f == 0 else "train").rename("split")
