"""The preprocessing spec: everything that decides a model input's pixels, one per run.

A run stores it in ``run.json`` and training, review and the command line all
build their pixels from that stored spec, so a file gives the model the same
input wherever it is read.  A spec of another :data:`PREPROCESS_VERSION` is
refused rather than served with pixels its models never saw.

Defaults ``clahe_clip=2.0`` and ``clahe_tiles=8`` are OpenCV's customary
values and the ones most mammography CLAHE papers use; the paper gives none.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import CheckpointError

# The spec's version: bump whenever the pixel path changes the pixels a spec
# produces, or the spec's fields change (a stored spec of another version is refused).
PREPROCESS_VERSION = 5  # 5: every input turned to put the chest wall on one side
MAX_SIZE = 4096  # no model input is larger; bigger asks are a typo
FITS = ("stretch", "pad")  # how the breast's box becomes the square input
CHEST_WALL_SIDES = ("left", "as-is")  # where every input's chest wall is turned; as-is: no turn
SOURCE_SIDE = 768  # default shorter side of the 8-bit rendering preprocessing starts from
MAX_SOURCE_SIDE = 16384  # larger than any mammogram's side


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that decides a model input's pixels: one spec per run.

    ``source_side`` is the shorter side of the 8-bit rendering the input is
    made from (``None``: ``max(SOURCE_SIDE, size)``); it is part of the spec
    because the rendering's reduction changes the pixels.  ``clahe_clip`` is
    OpenCV's clip limit (contrast amplification cap; 2.0 enhances parenchyma
    without blowing up noise), ``clahe_tiles`` the number of tiles per side
    (8 → 48-pixel tiles at 384, about a lesion's size).  ``chest_wall`` is the
    side every input's chest wall is turned to (:mod:`core.pixels.orientation`),
    so a mirrored file reaches the model as the same pixels; ``"as-is"`` keeps
    each file's own orientation, for comparison.
    """

    size: int
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    crop: bool = True
    fit: str = "stretch"
    source_side: int | None = None
    chest_wall: str = "left"

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.chest_wall not in CHEST_WALL_SIDES:
            raise ValueError(f"chest_wall must be one of {', '.join(CHEST_WALL_SIDES)}, "
                             f"got {self.chest_wall!r}")
        if not 8 <= int(self.size) <= MAX_SIZE:
            raise ValueError(f"size must be between 8 and {MAX_SIZE}, got {self.size}")
        if not 0 <= float(self.clahe_clip) <= 100:
            raise ValueError(f"clahe_clip must be between 0 and 100, got {self.clahe_clip}")
        if not 1 <= int(self.clahe_tiles) <= 64:
            raise ValueError(f"clahe_tiles must be between 1 and 64, got {self.clahe_tiles}")
        if self.source_side is None:
            object.__setattr__(self, "source_side", max(SOURCE_SIDE, int(self.size)))
        if not 8 <= int(self.source_side) <= MAX_SOURCE_SIDE:
            raise ValueError(f"source_side must be between 8 and {MAX_SOURCE_SIDE}, "
                             f"got {self.source_side}")

    def to_json(self) -> dict[str, object]:
        """The spec as ``run.json`` stores it under ``preprocess``, with its version."""
        return {**asdict(self), "version": PREPROCESS_VERSION}

    @classmethod
    def from_json(cls, block: object, where: str | Path | None = None,
                  what: str = "this run", made_by: str = "") -> PreprocessParams:
        """The stored spec, refused unless this code renders its version.

        A missing spec or another version means this code cannot promise the
        pixels the models were trained on, so the message says what to do
        instead of serving them something else.  ``made_by`` names the code
        that wrote the spec.
        """
        version = block.get("version") if isinstance(block, dict) else None
        if version is None:
            raise CheckpointError(f"{what} records no preprocessing spec{made_by}: it predates "
                                  f"preprocessing version {PREPROCESS_VERSION}; {_RETRAIN}", where)
        if version != PREPROCESS_VERSION:
            raise CheckpointError(f"{what} was made under preprocessing version {version}"
                                  f"{made_by}; this MammoRoute renders version "
                                  f"{PREPROCESS_VERSION}, so its models would see other pixels "
                                  f"than they were trained on; {_RETRAIN}", where)
        missing = [k for k in SPEC_KEYS if k not in block]
        if missing:
            raise CheckpointError(f"the preprocessing spec of {what} lacks "
                                  f"{', '.join(missing)}", where)
        try:
            if not isinstance(block["crop"], bool):
                raise ValueError(f"crop must be true or false, got {block['crop']!r}")
            return cls(size=int(block["size"]), clahe_clip=float(block["clahe_clip"]),
                       clahe_tiles=int(block["clahe_tiles"]), crop=block["crop"],
                       fit=block["fit"], source_side=int(block["source_side"]),
                       chest_wall=block["chest_wall"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"the preprocessing spec of {what} is invalid: {err}",
                                  where) from None

    @classmethod
    def from_run(cls, info: dict[str, object],
                 where: str | Path | None = None) -> PreprocessParams:
        """The spec a run was trained under, from its ``run.json`` (``where``: its path)."""
        spec = cls.from_json(info.get("preprocess"), where, "this run", _made_by(info))
        if info.get("img_size") is not None and info.get("img_size") != spec.size:
            raise CheckpointError(f"the preprocessing spec's size {spec.size} differs from the "
                                  f"run's img_size {info.get('img_size')}", where)
        return spec


SPEC_KEYS: tuple[str, ...] = tuple(PreprocessParams.__dataclass_fields__)
_RETRAIN = ("retrain it with this MammoRoute (Train page or `python -m core train`), or "
            "open it with the MammoRoute that made it")


def _made_by(info: dict[str, object]) -> str:
    """`` (MammoRoute 0.1.0, commit abc1234)`` from a run's ``run.json``, or ``""``."""
    parts = [f"MammoRoute {info['code_version']}" if info.get("code_version") else "",
             f"commit {str(info['git_commit'])[:7]}" if info.get("git_commit") else ""]
    said = ", ".join(p for p in parts if p)
    return f" ({said})" if said else ""
