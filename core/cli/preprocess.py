"""``python -m core preprocess FILE (--size S | --run RUN) --out OUT.png``: one file's model input.

Writes exactly what training and prediction feed the model (window → 8-bit →
breast crop → square stretch → CLAHE), so a user can check the preprocessing of any file.
``--run`` takes a run's stored spec (``run.json``), so the PNG is what that run's
models see; otherwise the options build a spec (training's defaults).
The shared cache is not used: a one-off look should neither need nor fill it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.argtypes import number
from core.errors import MammoError
from core.pixels.cache import load_preprocessed
from core.pixels.spec import MAX_SIZE, PreprocessParams
from core.runfolder.atomic import atomic_write_png
from core.runfolder.layout import RUN_FILE, read_run

OPTIONS: dict[str, str] = {"size": "--size", "clahe_clip": "--clahe-clip",
                           "clahe_tiles": "--clahe-tiles", "crop": "--no-crop", "fit": "--fit"}


def register(subparsers) -> None:
    """Add the ``preprocess`` command."""
    p = subparsers.add_parser("preprocess", help="write one image's preprocessed model input",
                              description=__doc__.splitlines()[0])
    p.add_argument("file", type=Path, help="DICOM, PNG, JPEG, PGM or TIFF file")
    p.add_argument("--size", type=number(int, 8, MAX_SIZE), help="output side in pixels, e.g. 384")
    p.add_argument("--run", type=Path,
                   help="run folder: use its stored preprocessing spec instead of the options")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--clahe-clip", type=number(float, 0, 100, note=" (CLAHE off)"),
                   help="CLAHE clip limit (0 = off; default 2)")
    p.add_argument("--clahe-tiles", type=number(int, 1, 64), help="CLAHE tiles per side (default 8)")
    p.add_argument("--no-crop", dest="crop", action="store_const", const=False,
                   help="the whole frame instead of the breast crop")
    p.add_argument("--fit", choices=("stretch", "pad"),
                   help="breast crop to the square: stretch (default) or pad (aspect kept)")
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace) -> PreprocessParams:
    """The run's stored spec with ``--run`` (no option may then contradict it), else
    the options' spec."""
    given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    if args.run is not None:
        if given:
            raise MammoError("--run uses the run's stored spec; leave out "
                             + ", ".join(OPTIONS[k] for k in given))
        run = read_run(args.run)
        return PreprocessParams.from_run(run.info, run.path / RUN_FILE)
    if "size" not in given:
        raise MammoError("give --size, or --run RUN to use a run's preprocessing spec")
    return PreprocessParams(**given)


def run(args: argparse.Namespace) -> int:
    img = load_preprocessed(args.file, _spec(args), cache=None)
    atomic_write_png(args.out, img)
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}) from {args.file}")
    return 0

