"""Dataset adapters: any supported layout in, one finalized manifest out.

Layouts are tried in registration order (VinDr-Mammo, CDD-CESM, manifest
CSV); the first whose ``find_root`` recognises the path loads it.  A new
layout is one :func:`register_layout` call, not another branch in
:func:`load_dataset`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.datasets import cddcesm, vindr
from core.datasets.manifest import read_manifest_csv
from core.errors import ManifestError

MANIFEST_NAME = "manifest.csv"
MANIFEST_SEARCH_DEPTH = 2


@dataclass(frozen=True)
class LoadOptions:
    """Options a layout may use; each ignores the ones that do not apply to it.

    A run records the options its dataset was read with (``run.json``'s
    ``dataset_options``), because the same folder read with other options is
    another dataset: other CDD-CESM images, another train/test split.
    """

    split_seed: int = 0
    cdd_type: str = "DM"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadOptions:
        """The options a ``to_json`` dict records; keys it lacks keep their defaults
        (a TypeError or ValueError for a value of the wrong kind)."""
        defaults = cls()
        return cls(**{k: type(getattr(defaults, k))(data[k]) for k in cls.__dataclass_fields__
                      if data.get(k) is not None})


@dataclass(frozen=True)
class Layout:
    """One on-disk layout: how to recognise it and how to read it."""

    name: str
    description: str
    find_root: Callable[[Path], Path | None]
    load: Callable[[Path, LoadOptions], pd.DataFrame]


LAYOUTS: list[Layout] = []


def register_layout(layout: Layout) -> Layout:
    """Add a layout after those already known (earlier ones win on ambiguous folders)."""
    if any(known.name == layout.name for known in LAYOUTS):
        raise ValueError(f"layout {layout.name!r} is already registered")
    LAYOUTS.append(layout)
    return layout


def detect_layout(path: str | Path) -> tuple[Layout, Path]:
    """The layout of ``path`` and the root it loads from, or a ManifestError naming the path."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ManifestError("no such file or folder", path)
    for layout in LAYOUTS:
        root = layout.find_root(path)
        if root is not None:
            return layout, root
    expected = "; ".join(layout.description for layout in LAYOUTS)
    raise ManifestError(f"not a dataset this app can read; expected {expected}", path)


def load_dataset(path: str | Path, split_seed: int = 0, cdd_type: str = "DM") -> pd.DataFrame:
    """Read any supported dataset as a finalized manifest (see :mod:`core.datasets.manifest`).

    ``split_seed`` seeds the train/test split of layouts that ship none
    (CDD-CESM); ``cdd_type`` picks CDD-CESM's low-energy (``"DM"``, the
    paper's choice) or subtracted (``"CESM"``) images.
    """
    return read_dataset(path, LoadOptions(int(split_seed), str(cdd_type)))


def read_dataset(path: str | Path, options: LoadOptions) -> pd.DataFrame:
    """:func:`load_dataset` with its options as one value, as a run records them."""
    layout, root = detect_layout(path)
    return layout.load(root, options)


# ---------------------------------------------------------------- the built-in layouts

def _vindr_root(path: Path) -> Path | None:
    if vindr.is_vindr_folder(path):
        return path
    if path.is_file() and path.name in (vindr.FINDINGS_CSV, vindr.BREASTS_CSV) \
            and vindr.is_vindr_folder(path.parent):
        return path.parent
    return None


def _cddcesm_root(path: Path) -> Path | None:
    return path if cddcesm.is_cddcesm(path) else None


def _manifest_root(path: Path) -> Path | None:
    """A CSV file, or the one ``manifest.csv`` in a folder (or a sub-folder of it)."""
    if path.is_file():
        return path if path.suffix.lower() == ".csv" else None
    if (path / MANIFEST_NAME).is_file():
        return path / MANIFEST_NAME
    found = sorted(p for depth in range(1, MANIFEST_SEARCH_DEPTH + 1)
                   for p in path.glob("/".join(["*"] * depth + [MANIFEST_NAME])) if p.is_file())
    if len(found) > 1:
        shown = ", ".join(str(p.relative_to(path)) for p in found[:5])
        raise ManifestError(f"{len(found)} manifest.csv files found ({shown}); name one", path)
    return found[0] if found else None


register_layout(Layout(
    "vindr", "a VinDr-Mammo folder (finding_annotations.csv or breast-level_annotations.csv, "
             "and images/)",
    _vindr_root, lambda root, _options: vindr.load_vindr(root)))
register_layout(Layout(
    "cdd-cesm", "a CDD-CESM folder (Radiology manual annotations.xlsx)",
    _cddcesm_root, lambda root, o: cddcesm.load_cddcesm(root, o.split_seed, o.cdd_type)))
register_layout(Layout(
    "manifest", "a manifest CSV (or a folder holding one manifest.csv)",
    _manifest_root, lambda root, _options: read_manifest_csv(root)))

__all__ = ["Layout", "LoadOptions", "detect_layout", "load_dataset", "read_dataset",
           "register_layout"]
