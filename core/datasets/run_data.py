"""A run's own dataset: the folder it was trained on, read with the options it was read with.

The same CDD-CESM folder read with another ``cdd_type`` is other images, and
with another ``split_seed`` another train/test split, whose "test" studies
include the run's training images.  So everything that reads a run's data
again (case review's study list, the Data page, external validation on the
run's own dataset) reads it here, with the options ``run.json`` records.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.datasets import LoadOptions, read_dataset
from core.errors import CheckpointError
from core.runfolder.layout import RUN_FILE, RunSummary

OPTIONS_KEY = "dataset_options"  # run.json: LoadOptions.to_json() of the run's dataset


@dataclass(frozen=True)
class RunOptions:
    """The options a run's dataset is read with, and whether the run recorded them.

    ``recorded`` is False for runs older than the record: they are read with
    the defaults, the only options MammoRoute had when they were trained.
    """

    options: LoadOptions
    recorded: bool

    def sentence(self) -> str:
        """How the run's dataset is read, in words, for the pages to show."""
        words = f"CDD-CESM images {self.options.cdd_type}, split seed {self.options.split_seed}"
        if self.recorded:
            return f"Read as this run read it ({words})."
        return ("This run's run.json does not record how its dataset was read (an older run): "
                f"it is read with the defaults ({words}), the only options there were then.")


def run_options(info: Mapping[str, Any], where: str | Path | None = None) -> RunOptions:
    """The run's dataset options: ``dataset_options``, else the same fields of its recorded
    training ``config``, else the defaults (``recorded`` False).

    ``where`` (the run's ``run.json``) is named when a recorded value is unreadable.
    """
    config = info.get("config") if isinstance(info.get("config"), Mapping) else {}
    for recorded in (info.get(OPTIONS_KEY), config):
        if isinstance(recorded, Mapping) and all(k in recorded for k in LoadOptions.__dataclass_fields__):
            try:
                return RunOptions(LoadOptions.from_json(recorded), True)
            except (TypeError, ValueError):
                raise CheckpointError(f"unreadable dataset options {dict(recorded)!r}",
                                      where) from None
    return RunOptions(LoadOptions(), False)


def is_run_dataset(info: Mapping[str, Any], path: str | Path) -> bool:
    """Whether ``path`` is the dataset the run was trained on."""
    trained_on = info.get("dataset_path")
    return bool(trained_on) and Path(trained_on).resolve() == Path(path).resolve()


def load_run_dataset(run: RunSummary) -> pd.DataFrame:
    """The run's dataset as the run read it (its folder, its :func:`run_options`).

    A run trained on an in-memory table records no folder: a CheckpointError.
    """
    where = run.path / RUN_FILE
    path = run.info.get("dataset_path")
    if not path:
        raise CheckpointError("this run records no dataset folder (it was trained on an "
                              "in-memory table), so its dataset cannot be read again", where)
    return read_dataset(path, run_options(run.info, where).options)
