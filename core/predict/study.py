"""The models of one run and routed prediction of a study (up to four views)."""
from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from core.datasets.roi import has_roi, read_mask
from core.errors import CheckpointError, ImageReadError, MammoError, MaskError
from core.evaluate.calibration import Calibration
from core.grid import (
    MODES,
    CellGap,
    Mode,
    Route,
    is_route_warning,
    modes_for,
    plan,
    route_image,
    route_warning,
    serve,
)
from core.models import (
    CAM_RECIPES,
    CamRecipe,
    MammoNet,
    arch_spec,
    create_model,
    load_weights,
    pick_device,
)
from core.pixels.crop import mask_to_input
from core.pixels.preprocess import prepare_input, render_source
from core.pixels.spec import PreprocessParams
from core.pixels.views import combine_view
from core.predict.cam import WITHIN_BREAST, cam_pass, new_cam, unit_maps
from core.predict.types import Prepared, ViewInput, ViewResult
from core.roifinder.infer import Proposal, RoiFinder
from core.runfolder.integrity import verify_meta
from core.runfolder.layout import META_FILE, WEIGHTS_FILE, RunSummary, read_json, read_run

BATCH_SIZE = 32


class Predictor:
    """The models of one run, loaded once, and routed prediction over them.

    Every cell whose ``run.json`` status is ``done`` is loaded with its
    weights and its ``meta.json`` (threshold, calibration) verified against
    the SHA-256s recorded there (a changed file raises
    :class:`CheckpointError` here, before anything is predicted).  Cells not
    done are remembered with their reason, for the fallback rule
    (:data:`core.grid.FALLBACK_ORDER`): an ROI-aware image whose cell has no model goes
    to the baseline model of its view, else the other ROI-aware cell of its
    view (flagged ``fallback``), else gets no prediction; a baseline image
    whose cell has no model gets no prediction.
    """

    def __init__(self, run_dir: str | Path, device: str | torch.device = "cpu"):
        self.run: RunSummary = read_run(run_dir)
        info = self.run.info
        try:
            self.arch = str(info["arch"])
            self.img_size = int(info["img_size"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError("run.json lacks a valid 'arch' / 'img_size'",
                                  self.run.path / "run.json") from None
        modes = info.get("modes", MODES)
        modes = modes_for(modes) if isinstance(modes, str) else modes
        self.modes: tuple[Mode, ...] = tuple(m for m in MODES if m in modes)
        self.params = PreprocessParams.from_run(info, self.run.path / "run.json")
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.models: dict[str, MammoNet] = {}
        self.thresholds: dict[str, float] = {}
        self.calibrations: dict[str, Calibration] = {}
        self.unavailable: dict[str, CellGap] = {}
        self._cams: dict[str, Any] = {}
        self._cam_recipe: CamRecipe | None = None  # None: the family's recipe (core.models)
        self._template: MammoNet | None = None
        # One model call at a time: Grad-CAM hooks are module-wide, so a plain forward
        # running beside a CAM (two UI sessions sharing a Predictor) would corrupt it.
        self._lock = threading.RLock()
        for mode in self.modes:
            for cell in plan(mode):
                self._load_cell(cell.name, info.get("cells", {}).get(cell.name))
        self._template = None
        self.finder = RoiFinder.from_run(self.run.path, info, self.device)
        if self.finder is not None and self.finder.params.source_side != self.params.source_side:
            raise CheckpointError(f"the ROI finder renders at a {self.finder.params.source_side}"
                                  f"-px source side, the grids at {self.params.source_side}: "
                                  "retrain the run", self.run.path / "run.json")
        if not self.models:
            raise CheckpointError("no trained cell in this run", self.run.path)

    @property
    def cam_recipe(self) -> CamRecipe | None:
        """The Grad-CAM method and layers every model uses; None: each family's own."""
        return self._cam_recipe

    @cam_recipe.setter
    def cam_recipe(self, recipe: CamRecipe | None) -> None:
        """A new recipe drops the CAM objects made under the old one (they are per recipe)."""
        with self._lock:
            self._cam_recipe = recipe
            self._cams.clear()

    def _load_cell(self, name: str, entry: dict[str, Any] | None) -> None:
        if not entry or entry.get("status") != "done":
            entry = entry or {}
            reason = entry.get("reason")
            self.unavailable[name] = CellGap(str(entry.get("status", "missing from run.json")),
                                             str(reason) if reason else None)
            return
        if not entry.get("sha256"):  # unverifiable weights are refused, like changed ones
            raise CheckpointError("run.json records no SHA-256 for these weights; refusing "
                                  "to load unverified weights", self.run.path / name / WEIGHTS_FILE)
        model = self._blank_model()
        load_weights(model, self.run.path / name / WEIGHTS_FILE, entry["sha256"])
        model.requires_grad_(False)  # Grad-CAM differentiates w.r.t. the input instead
        self.models[name] = model.to(self.device).eval()
        self.thresholds[name] = self._threshold(name)
        self.calibrations[name] = Calibration(self._temperature(name),
                                              self._meta_number(name, "logit_offset", 0.0))
        verify_meta(self.run.path / name / META_FILE, entry.get("meta_sha256"))

    def _blank_model(self) -> MammoNet:
        """A fresh model to fill: timm's weight init is built once, then copied (5x faster)."""
        if self._template is None:
            self._template = create_model(self.arch, self.img_size)
        return copy.deepcopy(self._template)

    def _meta_number(self, name: str, key: str, default: float | None = None) -> float:
        """``key`` of the cell's meta.json as a float; ``default`` when the key is absent
        (None: the key is required).

        A trained cell always writes meta.json; without it the cell's threshold
        is unknown, and serving it with some other threshold would be silent.
        """
        meta_path = self.run.path / name / META_FILE
        if not meta_path.is_file():
            raise CheckpointError("missing: a trained cell records its decision threshold "
                                  "here; the run folder is incomplete", meta_path)
        meta = read_json(meta_path)
        value = meta.get(key) if isinstance(meta, dict) else None
        if value is None:
            if default is None:
                raise CheckpointError(f"records no {key}", meta_path)
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise CheckpointError(f"{key} {value!r} is not a number", meta_path) from None

    def _threshold(self, name: str) -> float:
        return self._meta_number(name, "threshold")

    def _temperature(self, name: str) -> float:
        """The cell's fitted temperature (probabilities are ``sigmoid(logit / T)``)."""
        value = self._meta_number(name, "temperature", 1.0)
        if not value > 0 or value == float("inf"):
            raise CheckpointError(f"temperature {value!r} must be a positive number",
                                  self.run.path / name / META_FILE)
        return value

    # ------------------------------------------------------------------ routing

    def route(self, view: str, has_roi: bool, mode: Mode) -> Route:
        """The model serving an image of ``view`` under ``mode``, with the fallback rule."""
        if mode not in self.modes:
            return Route(route_image(view, has_roi, mode).name, None,
                         reason=f"this run has no {mode} grid")
        return serve(view, has_roi, mode, self.models, self.unavailable)

    # ------------------------------------------------------------------ models

    def _tensor(self, images: np.ndarray, grad: bool = False) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = x.unsqueeze(1).float().div_(255.0)
        return x.requires_grad_(True) if grad else x

    def logits(self, cell: str, images: np.ndarray) -> np.ndarray:
        """The malignancy logit (fp32, before temperature) of uint8 ``(N, size, size)`` images."""
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(images), BATCH_SIZE):
                logits = self.models[cell](self._tensor(images[start:start + BATCH_SIZE]))
                out.append(logits.float()[:, 0].cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def probabilities(self, cell: str, images: np.ndarray) -> np.ndarray:
        """Calibrated P(malignant), ``sigmoid((logit - offset) / T)``, under ``cell``'s model."""
        return self.calibrations[cell].probability(self.logits(cell, images))

    def _cam_object(self, cell: str) -> Any:
        """One CAM per model (:func:`core.models.make_cam`: the method and layers of its
        family, or ``self.cam_recipe``), made on first use; hooks detached between calls."""
        if cell not in self._cams:
            self._cams[cell] = new_cam(self.models[cell], self.cam_recipe)
        return self._cams[cell]

    @property
    def cam_method(self) -> str:
        """How this run's maps are made and scaled, e.g. "HiResCAM on stage -2, normalised
        within the breast": said beside every map, as Compare names its maps."""
        recipe = self.cam_recipe or CAM_RECIPES[arch_spec(self.arch).family]
        return f"{recipe.describe()}, {WITHIN_BREAST}"

    def probabilities_and_cams(self, cell: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(malignant) and Grad-CAM maps (float32 ``(N, size, size)`` in [0, 1]).

        The target is the single malignancy logit, so the map shows what pushes
        the model towards "malignant" (:func:`core.predict.cam.cam_pass`).
        """
        probs, maps = [], []
        for start in range(0, len(images), BATCH_SIZE):
            x = self._tensor(images[start:start + BATCH_SIZE], grad=True)
            with self._lock:
                logits, grey = cam_pass(self._cam_object(cell), x)
            probs.append(self.calibrations[cell].probability(logits))
            maps.append(unit_maps(grey, images.shape[1:], images[start:start + BATCH_SIZE]))
        return np.concatenate(probs).astype(np.float64), np.concatenate(maps)

    # ------------------------------------------------------------------ studies

    def predict_study(self, inputs: Sequence[ViewInput], cam: bool = False,
                      propose: bool = True) -> list[ViewResult]:
        """Route and predict every view of a study; one bad view never stops the others.

        Views served by the same model are batched.  ``cam=True`` adds Grad-CAM
        maps for both grids.  A view without a user's mask is routed by the
        run's ROI finder when it has one and ``propose`` is on (``roi_source``
        ``"proposed"``); a user's mask always wins (``"mask"``); otherwise
        ``"none"`` (routed as without ROI).
        """
        results = [ViewResult(image=item.label) for item in inputs]
        prepared: list[Prepared] = []
        for i, item in enumerate(inputs):
            try:
                prepared.append(self._prepare(i, item, results[i], propose))
            except MammoError as err:
                results[i].error = str(err)
        for mode in self.modes:
            self._predict_mode(mode, prepared, results, cam)
        for p in prepared:
            self._flag_unpredicted(results[p.index])
            if cam:
                results[p.index].cam_method = self.cam_method
        return results

    def _prepare(self, index: int, item: ViewInput, result: ViewResult,
                 propose: bool = True) -> Prepared:
        """Read, preprocess, assign the view and read the mask of one input."""
        pixels, source_shape, tags = _read_pixels(item, self.params)
        orientation = tags.get("patient_orientation")
        result.preprocessed, result.box = prepare_input(pixels, self.params, orientation)
        view, source = combine_view(tags.get("laterality"), tags.get("view_position"),
                                    item.name or (Path(item.path).name if item.path else ""),
                                    item.view, "user", result.warnings, pixels=pixels)
        if view is None:
            raise MammoError("cannot tell the view (not in the DICOM tags or the file name, "
                             "and not clear from the image); give it, e.g. RCC", item.label)
        result.view, result.view_source = view, source
        full = _read_input_mask(item, source_shape)
        result.roi = has_roi(full)
        if full is not None and not result.roi:
            result.warnings.append("the mask is empty (all zero): routed as without ROI")
        if result.roi:
            result.mask = mask_to_input(full, result.box, self.img_size)
        if full is not None:
            result.roi_source = "mask"
        elif propose and item.propose and self.finder is not None:
            _record_proposal(result, self.finder.propose_pixels(pixels, source_shape, orientation))
        return Prepared(index, result.preprocessed, view, result.roi)

    def _predict_mode(self, mode: Mode, prepared: list[Prepared], results: list[ViewResult],
                      cam: bool) -> None:
        groups: dict[str, list[Prepared]] = defaultdict(list)
        for p in prepared:
            route = self.route(p.view, p.roi, mode)
            _record_route(results[p.index], mode, route, self.unavailable.get(route.wanted))
            if route.cell is not None:
                groups[route.cell].append(p)
        for cell, members in groups.items():
            batch = np.stack([p.image for p in members])
            if cam:
                probs, maps = self.probabilities_and_cams(cell, batch)
            else:
                probs, maps = self.probabilities(cell, batch), [None] * len(members)
            for p, prob, cam_map in zip(members, probs, maps):
                _record_prediction(results[p.index], mode, float(prob),
                                   self.thresholds[cell], cam_map)

    @staticmethod
    def _flag_unpredicted(result: ViewResult) -> None:
        """A view no grid could predict is an error, with the routing reasons as its text."""
        if result.p_malignant_roi_aware is None and result.p_malignant_baseline is None:
            reasons = [w for w in result.warnings if is_route_warning(w)]
            result.error = "; ".join(reasons) or "no model serves this view"


# --------------------------------------------------------------------------- helpers

def _read_pixels(item: ViewInput, params: PreprocessParams
                 ) -> tuple[np.ndarray, tuple[int, int], dict[str, Any]]:
    """``(uint8 or [0, 1] pixels, mammogram shape, tags)`` from a file or pre-read pixels.

    A file is rendered exactly as training renders it (:func:`render_source` under
    the run's spec), so a training image read here gives the model the same input.
    """
    if item.pixels is None:
        if item.path is None:
            raise ImageReadError("neither a file nor pixels given", item.label)
        img = render_source(item.path, params)
        return img.pixels, tuple(img.source_shape), dict(img.tags)
    side = (item.tags or {}).get("source_side")
    if side is not None and int(side) != params.source_side:
        raise ImageReadError(f"rendered at a {side}-px source side, but this run's spec needs "
                             f"{params.source_side} px: read the file again", item.label)
    arr = np.asarray(item.pixels)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
    if arr.ndim != 2:
        raise ImageReadError(f"pixels of shape {arr.shape} are not a 2-D image", item.label)
    if arr.dtype != np.uint8:  # uint8 is the rendering preprocessing starts from: kept as is
        if np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
        elif np.nanmin(arr) < 0 or np.nanmax(arr) > 1:
            raise ImageReadError("float pixels must lie in [0, 1]", item.label)
        arr = arr.astype(np.float32)
    shape = tuple(item.tags.get("source_shape", arr.shape)) if item.tags else arr.shape
    return arr, (int(shape[0]), int(shape[1])), dict(item.tags or {})


def _read_input_mask(item: ViewInput, shape: tuple[int, int]) -> np.ndarray | None:
    """The mask at the mammogram's size (0/1), None when none is given."""
    if item.mask is not None:
        mask = np.asarray(item.mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != tuple(shape):
            raise MaskError(f"mask size {mask.shape[1]}×{mask.shape[0]} differs from its "
                            f"mammogram's {shape[1]}×{shape[0]}", item.label)
        return (mask > 0).astype(np.uint8)
    if item.mask_path is not None:
        return read_mask(item.mask_path, expected_shape=shape)
    return None


def _record_proposal(result: ViewResult, proposal: Proposal) -> None:
    """The finder's answer routes the view; its boxes are shown only when it says ROI."""
    result.roi_source = "proposed"
    result.roi_probability = float(proposal.probability)  # unrounded: exports are audited
    result.roi_threshold = float(proposal.threshold)
    result.roi = proposal.present
    result.roi_boxes = proposal.boxes if proposal.present else []


def _record_route(result: ViewResult, mode: Mode, route: Route, gap: CellGap | None) -> None:
    if mode == "roi":
        result.cell_roi_aware = route.cell
        result.fallback = route.fallback
        result.fallback_reason = route.reason if route.fallback else None
        result.gap_roi_aware = gap if route.cell != route.wanted else None
    else:
        result.cell_baseline = route.cell
    if route.reason:
        result.warnings.append(route_warning(mode, route.reason))


def _record_prediction(result: ViewResult, mode: Mode, prob: float, threshold: float,
                       cam_map: np.ndarray | None) -> None:
    if mode == "roi":
        result.p_malignant_roi_aware, result.threshold_roi_aware = prob, threshold
        result.cam_roi_aware = cam_map
    else:
        result.p_malignant_baseline, result.threshold_baseline = prob, threshold
        result.cam_baseline = cam_map
