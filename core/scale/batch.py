"""Batch prediction of a whole manifest with Ray Data: the same table, scored by workers.

The pipeline is ``from_items`` (one item per manifest row: its position and
image path) → ``map_batches`` of :func:`preprocess_batch` (tasks on CPU workers:
each row's model input by the run's own preprocessing spec, through
:mod:`core.pixels`, and the ROI finder's input when the run has one) →
``map_batches`` of :class:`Score` (actors that load the run's models once:
one per GPU where the cluster has GPUs; on CPUs alone Ray Data fuses the two
steps into one actor per CPU) → the driver,
which puts the rows back in manifest order and builds the table with
:func:`core.predict.manifest.prediction_table`.

Nothing about the answer is decided here: a worker routes and scores its
batch with :func:`core.predict.manifest.predict_rows` and the finder's
:func:`core.roifinder.proposals.proposal_rows`, the functions the one-process
path runs, so routing, fallbacks, calibration and thresholds are the serial
code's and only where the arithmetic runs changes.  Models in eval mode score
each image on its own, so another batching gives the same probabilities up
to float rounding (checked to 1e-5 by ``tests/test_scale_batch.py``).

What travels how: the manifest table reaches the workers in the object store
(with the actors' constructor arguments), the preprocessed images move
between the two stages in it, and the results come back to the driver, which
alone writes files.  The run folder and the images are read by path on the
workers, so on a cluster of several machines both must be at the same path on
every node (a shared file system); a local Ray shares this machine's.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.errors import MammoError

if TYPE_CHECKING:
    from core.pixels.spec import PreprocessParams
    from core.predict import Predictor
    from core.predict.external import ManifestPredict

EXECUTORS: tuple[str, ...] = ("local", "ray")
BOX_FIELDS = 5  # a CropBox as x0, y0, x1, y1, mirrored


def _box_row(box: Any) -> list[float]:
    return [box.x0, box.y0, box.x1, box.y1, float(box.mirrored)]


def _box(row: np.ndarray) -> Any:
    from core.pixels.crop import CropBox

    return CropBox(*map(float, row[:4]), mirrored=bool(row[4]))


def preprocess_batch(batch: dict[str, np.ndarray], params: PreprocessParams,
                     finder_params: PreprocessParams | None) -> dict[str, np.ndarray]:
    """A batch of manifest rows → their model inputs (and the finder's, with its crop boxes)."""
    from core.pixels.cache import load_preprocessed, load_preprocessed_with_box

    paths = [str(p) for p in batch["image_path"]]
    out = {"index": batch["index"],
           "image": np.stack([load_preprocessed(p, params) for p in paths])}
    if finder_params is not None:
        loaded = [load_preprocessed_with_box(p, finder_params) for p in paths]
        out["finder_image"] = np.stack([image for image, _ in loaded])
        out["finder_box"] = np.array([_box_row(box) for _, box in loaded], np.float64)
    return out


class Score:
    """An actor holding the run's models: a batch's rows of every grid, as the serial path
    makes them (one JSON list per manifest row, so the driver can restore its order)."""

    def __init__(self, run_dir: str, device: str, df_ref: list[Any], threads: int):
        """``df_ref``: ``[ObjectRef]`` of the manifest table (in a list, so Ray hands over the
        reference and the table is fetched once per actor from the object store)."""
        import ray
        import torch

        from core.predict import Predictor
        from core.predict.manifest import manifest_records, proposes
        from core.roifinder.proposals import proposal_records

        torch.set_num_threads(max(1, threads))
        self.predictor = Predictor(run_dir, device)
        df = ray.get(df_ref[0])
        self.rec = manifest_records(df)
        self.records = proposal_records(df) if proposes(self.predictor) else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from core.predict.manifest import predict_rows
        from core.roifinder.proposals import proposal_rows

        chunk = [int(i) for i in batch["index"]]
        proposals: list[dict[str, Any]] = []
        routed = None
        if self.records is not None:
            loaded = [(image, _box(box)) for image, box in zip(batch["finder_image"],
                                                                batch["finder_box"])]
            proposals = proposal_rows(self.predictor.finder, [self.records[i] for i in chunk],
                                      loaded)
            routed = pd.Series([p["roi_present"] for p in proposals], index=chunk)
        rows: list[dict[str, Any]] = []
        unpredicted = predict_rows(self.predictor, self.rec, chunk, batch["image"], rows, routed)
        by_row: dict[int, list[dict[str, Any]]] = {i: [] for i in chunk}
        for row in rows:
            by_row[row["_order"]].append(row)
        return {
            "index": np.array(chunk, np.int64),
            "rows": np.array([json.dumps(by_row[i]) for i in chunk], dtype=object),
            "proposal": np.array([json.dumps(p) for p in proposals] or [""] * len(chunk),
                                 dtype=object),
            # the batch's count rides on its first row, so the sum over rows is the total
            "unpredicted": np.array([unpredicted] + [0] * (len(chunk) - 1), np.int64),
        }


def _quiet(ctx: Any) -> None:
    """No per-dataset log lines or statistics (the command's output is its own), and a
    worker's error raised as itself, not wrapped."""
    import logging

    ctx.print_on_execution_start = False
    ctx.raise_original_map_exception = True  # a MammoError reaches the driver as itself
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _mammo_cause(err: BaseException) -> MammoError | None:
    """The project's own error (a bad image, a refused run) inside a Ray task failure."""
    from ray.exceptions import RayError

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, MammoError) and not isinstance(seen, RayError):
            return seen
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return None


def predict_manifest_ray(predictor: Predictor, df: pd.DataFrame, batch_size: int | None = None
                         ) -> pd.DataFrame:
    """:func:`core.predict.predict_manifest`'s table for ``df``, computed on the open Ray
    session's workers.  ``predictor`` (already loaded here, which checks the run before
    any worker starts) gives the run folder and the preprocessing specs."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from core.predict import BATCH_SIZE
    from core.predict.manifest import prediction_table, proposes
    from core.roifinder.proposals import proposal_table

    df = df.reset_index(drop=True)
    batch_size = batch_size or BATCH_SIZE
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    finds = proposes(predictor)
    items = [{"index": i, "image_path": str(p)} for i, p in enumerate(df["image_path"])]
    _quiet(DataContext.get_current())
    df_ref = ray.put(df)
    # A GPU actor per GPU (preprocessing stays on CPU tasks); on CPUs alone Ray Data fuses
    # both steps into one actor per CPU, which reads and scores its own batches.
    scoring: dict[str, Any] = {"num_gpus": 1} if gpus else {}
    ds = (ray.data.from_items(items)
          .map_batches(preprocess_batch, batch_size=batch_size, batch_format="numpy",
                       num_cpus=1,
                       fn_kwargs={"params": predictor.params,
                                  "finder_params": predictor.finder.params if finds else None})
          .map_batches(Score, batch_size=batch_size, batch_format="numpy",
                       compute=ActorPoolStrategy(size=gpus or cpus), num_cpus=1,
                       fn_constructor_kwargs={"run_dir": str(predictor.run.path),
                                              "device": "cuda" if gpus else "cpu",
                                              "df_ref": [df_ref], "threads": 1},
                       **scoring))
    try:
        out = ds.to_pandas()
    except Exception as err:
        cause = _mammo_cause(err)
        if cause is not None:  # made anew: Ray appends its retry advice to the message
            raise type(cause)(cause.problem, cause.path) from None
        raise
    out = out.sort_values("index")
    rows = [row for text in out["rows"] for row in json.loads(text)]
    proposals = (proposal_table([json.loads(text) for text in out["proposal"]])
                 if finds else None)
    return prediction_table(rows, int(out["unpredicted"].sum()), proposals)


def _local(predictor: Predictor, df: pd.DataFrame) -> pd.DataFrame:
    from core.predict import predict_manifest

    return predict_manifest(predictor, df)


@contextmanager
def manifest_executor(executor: str, address: str | None = None) -> Iterator[ManifestPredict]:
    """The function that predicts a manifest under ``--executor``: this process (``local``),
    or Ray Data on a session that stays open while the block runs (``ray``)."""
    if executor not in EXECUTORS:
        raise MammoError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        if address:
            raise MammoError("--ray-address needs --executor ray")
        yield _local
        return
    from core.scale.session import ray_session

    with ray_session(address):
        yield predict_manifest_ray
