"""Model factory, weight files and Grad-CAM targets."""
from __future__ import annotations

import pytest
import torch

from core.errors import CheckpointError
from core.models import (
    ARCHS,
    CamRecipe,
    arch_spec,
    cam_target,
    create_model,
    load_tensors,
    load_weights,
    save_tensors,
    save_weights,
)

TINY = ("convnextv2_atto", "swin_micro")


@pytest.mark.parametrize("arch", TINY)
def test_grey_input_gives_one_logit_per_image(arch):
    model = create_model(arch, 64).eval()
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 1)
    # The grey channel is repeated, so a 3-channel copy through the backbone agrees.
    with torch.no_grad():
        direct = model.backbone((x.expand(-1, 3, -1, -1) - model.mean) / model.std)
    torch.testing.assert_close(out, direct)


@pytest.mark.parametrize("arch", (*TINY, "resnet10t"))
@pytest.mark.parametrize("stage, side", [(-1, 2), (-2, 4)])  # stride 32 and 16 at 64 px
def test_cam_target_gives_nchw_maps(arch, stage, side):
    model = create_model(arch, 64).eval()
    target = cam_target(model, CamRecipe("gradcam", (stage,)))
    seen = {}
    handle = target.layers[0].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        model(torch.rand(2, 1, 64, 64))
    handle.remove()
    out = target.reshape(seen["out"]) if target.reshape else seen["out"]
    assert out.shape[0] == 2 and out.shape[2:] == (side, side)
    assert (target.reshape is not None) == (arch_spec(arch).family == "swin")


def test_paper_swin_uses_window_12_at_384():
    kwargs = ARCHS["swin"].kwargs(384)
    assert kwargs == {"img_size": 384, "window_size": 12}


def test_weights_round_trip_to_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("convnextv2_atto", 64).eval()
    sha = save_weights(model, tmp_path / "w.safetensors")
    other = load_weights(create_model("convnextv2_atto", 64).eval(), tmp_path / "w.safetensors", sha)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


def test_tampered_truncated_and_foreign_weights_are_refused(tmp_path):
    model = create_model("convnextv2_atto", 64)
    path = tmp_path / "w.safetensors"
    sha = save_weights(model, path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_weights(model, path, sha)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="w.safetensors"):
        load_weights(model, path)
    save_weights(model, path)
    with pytest.raises(CheckpointError, match="convnextv2_atto at 64 px, not swin_micro"):
        load_weights(create_model("swin_micro", 64), path)


def test_pretrained_local_file_is_loaded_and_head_dropped(tmp_path):
    import timm

    torch.manual_seed(1)
    source = timm.create_model("convnextv2_atto", pretrained=False)  # 1000-class head
    file = tmp_path / "atto.safetensors"
    save_tensors(source.state_dict(), file)
    model = create_model("convnextv2_atto", 64, pretrained=file)
    torch.testing.assert_close(model.backbone.stem[0].weight, source.stem[0].weight)
    assert model.backbone.get_classifier().out_features == 1


def test_pretrained_swin_224_file_fits_swin_at_other_size(tmp_path):
    import timm

    from core.models import _swin_micro_kwargs

    kwargs = {k: v for k, v in _swin_micro_kwargs(128).items() if k not in ("img_size", "window_size")}
    source = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kwargs)
    file = tmp_path / "swin.safetensors"
    save_tensors(source.state_dict(), file)
    model = create_model("swin_micro", 128, pretrained=file)
    torch.testing.assert_close(model.backbone.patch_embed.proj.weight, source.patch_embed.proj.weight)


def test_pickled_or_missing_pretrained_is_refused(tmp_path):
    pth = tmp_path / "w.pth"
    pth.write_bytes(b"not even a pickle")
    with pytest.raises(CheckpointError, match="never loaded"):
        create_model("convnextv2_atto", 64, pretrained=pth)
    with pytest.raises(CheckpointError, match="not found"):
        create_model("convnextv2_atto", 64, pretrained=tmp_path / "nope.safetensors")


def test_unknown_arch_and_bad_size_are_clear():
    with pytest.raises(CheckpointError, match="unknown architecture"):
        create_model("no_such_net", 64)
    with pytest.raises(CheckpointError, match="multiple of 32"):
        create_model("swin", 100)


def test_load_tensors_reads_metadata(tmp_path):
    save_tensors({"a": torch.ones(2)}, tmp_path / "t.safetensors", {"k": "v"})
    tensors, meta = load_tensors(tmp_path / "t.safetensors")
    assert meta == {"k": "v"} and torch.equal(tensors["a"], torch.ones(2))
