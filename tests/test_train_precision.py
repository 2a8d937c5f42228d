"""Validation, epoch choice and the threshold see the logits the predictor serves (fp32).

On CUDA the training step runs under bf16 autocast.  Here a CPU bf16 autocast
stands in for it, so the test runs without a GPU: the training step is bf16,
and every logit that validation and the threshold are computed from must
still be the fp32 logit of the saved weights.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from core.grid import Cell
from core.models import create_model, load_weights
from core.runfolder import layout as runs
from core.train import TrainConfig, train_cell
from core.train import loop as train_loop
from core.train.augment import to_float

SIZE = 32


class _Bank:
    """An image bank over tensors made here: no file, no preprocessing."""

    def __init__(self, paths: list[str], seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (len(paths), 1, SIZE, SIZE), dtype=np.uint8)
        self.images = dict(zip(paths, torch.from_numpy(images)))

    def take(self, paths: list[str] | pd.Series) -> torch.Tensor:
        return torch.stack([self.images[p] for p in paths])


def _rows(prefix: str, n: int) -> pd.DataFrame:
    return pd.DataFrame({"image_path": [f"{prefix}{i}" for i in range(n)],
                         "patient_id": [f"{prefix}p{i}" for i in range(n)],
                         "label": ["malignant" if i % 2 else "benign" for i in range(n)]})


def _fp32_logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(to_float(x)).float().squeeze(1).numpy()


def test_validation_and_threshold_use_fp32_logits_under_bf16_training(tmp_path, monkeypatch):
    monkeypatch.setattr(train_loop, "autocast_for",
                        lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    seen: dict[str, list] = {"x": [], "bce": []}
    real_predict, real_bce = train_loop.predict_logits, train_loop.bce

    def predict_spy(model, x, device, *args, **kwargs):
        seen["x"].append(x)
        return real_predict(model, x, device, *args, **kwargs)

    def bce_spy(logits, y, pos_weight):
        seen["bce"].append(np.array(logits))
        return real_bce(logits, y, pos_weight)

    monkeypatch.setattr(train_loop, "predict_logits", predict_spy)
    monkeypatch.setattr(train_loop, "bce", bce_spy)

    train_df, val_df = _rows("t", 16), _rows("v", 12)
    bank = _Bank(list(train_df["image_path"]) + list(val_df["image_path"]))
    config = TrainConfig(arch="resnet10t", img_size=SIZE, epochs=1, batch_size=8, lr=1e-3,
                         seed=0, device="cpu", mode="baseline", log_every=2)
    result = train_cell(Cell(None, "RCC"), train_df, val_df, config, tmp_path, bank=bank)
    assert result.status == "done"

    model = create_model("resnet10t", SIZE)
    load_weights(model, tmp_path / "all-RCC" / runs.WEIGHTS_FILE, result.sha256)
    x_val = bank.take(val_df["image_path"])
    assert torch.equal(seen["x"][0], x_val)  # the first prediction is the epoch's validation
    fp32 = _fp32_logits(model, x_val)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = _fp32_logits(model, x_val)
    assert np.abs(bf16 - fp32).max() > 1e-3  # the stand-in autocast does change the logits

    (val_logits,) = seen["bce"]
    np.testing.assert_allclose(val_logits, fp32, atol=1e-5)  # validation loss → epoch choice
    meta = json.loads((tmp_path / "all-RCC" / runs.META_FILE).read_text())
    fit_logits = meta["calibration_data"]["val_logits"]  # calibration → Youden threshold
    np.testing.assert_allclose(fit_logits, fp32, atol=1e-5)
    y_val = (val_df["label"] == "malignant").to_numpy(dtype=np.float32)
    assert meta["val_loss"] == pytest.approx(real_bce(fp32, y_val, 1.0), abs=2e-6)
