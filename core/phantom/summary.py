"""What a phantom holds, image by image, and the tables it adds up to.

The summary is both what ``write_phantom`` returns and what ``phantom.json``
records, so the app and the tests can check composition without reading the
layout back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class PhantomSummary:
    """What was written, image by image, and its composition.

    ``records`` has one entry per image an adapter labels or excludes (VinDr
    DICOMs; CDD-CESM low-energy DM images), in manifest vocabulary: ``label``
    benign | malignant | normal (normal = excluded by the adapters),
    ``split`` train | test | "" (CDD-CESM: the adapter splits).
    """

    profile: str
    out: str
    studies: int
    size: int
    seed: int
    difficulty: float
    files: int
    records: list[dict[str, Any]]

    def _count(self, key: str) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for r in self.records:
            if r["label"] in ("benign", "malignant"):
                row = table.setdefault(_key_of(r, key), {"benign": 0, "malignant": 0})
                row[r["label"]] += 1
        return dict(sorted(table.items()))

    @property
    def by_split(self) -> dict[str, dict[str, int]]:
        """Labelled images per split × label (Tables 1 and 3); split "" = none written."""
        return self._count("split")

    @property
    def by_roi(self) -> dict[str, dict[str, int]]:
        """Labelled images per ROI presence × label (Tables 2 and 4)."""
        return self._count("roi")

    @property
    def by_cell(self) -> dict[str, dict[str, int]]:
        """Labelled images per grid cell (``roi-LMLO`` …) × label."""
        return self._count("cell")

    @property
    def excluded(self) -> int:
        return sum(r["label"] == "normal" for r in self.records)

    def rates(self) -> dict[str, float]:
        """The rates the paper's tables imply, as written."""
        lab = [r for r in self.records if r["label"] != "normal"]
        mal = [r for r in lab if r["label"] == "malignant"]
        ben = [r for r in lab if r["label"] == "benign"]
        test = [r for r in lab if r["split"] == "test"]
        return {
            "malignant_fraction": len(mal) / max(1, len(lab)),
            "roi_if_malignant": sum(r["roi"] for r in mal) / max(1, len(mal)),
            "roi_if_benign": sum(r["roi"] for r in ben) / max(1, len(ben)),
            "test_fraction": len(test) / max(1, len(lab)),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(by_split=self.by_split, by_roi=self.by_roi, by_cell=self.by_cell,
                 excluded=self.excluded, rates=self.rates())
        return d

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [f"synthetic phantom ({self.profile}): {self.studies} studies, {self.files} files, "
                 f"{self.size}px, seed {self.seed}, difficulty {self.difficulty:g} -> {self.out}",
                 f"  labelled images: {sum(r['label'] != 'normal' for r in self.records)}, "
                 f"excluded (BI-RADS 1 / normal): {self.excluded}"]
        for name, table in (("split", self.by_split), ("roi", self.by_roi)):
            for k, row in table.items():
                lines.append(f"  {name}={k or '(none)'}: benign {row['benign']}, malignant {row['malignant']}")
        lines.append("  rates: " + ", ".join(f"{k} {v:.3f}" for k, v in self.rates().items()))
        return "\n".join(lines)


def _key_of(record: dict[str, Any], key: str) -> str:
    """Grouping key of a summary record: its split, ROI presence or cell name."""
    if key == "roi":
        return "roi" if record["roi"] else "noroi"
    if key == "cell":
        return f"{'roi' if record['roi'] else 'noroi'}-{record['view_name']}"
    return str(record[key])
