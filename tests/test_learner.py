"""learner.py: pretrained weights from a local file, device and precision choices, LR suggestions."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import project_params
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.fp16 import MixedPrecision
from PIL import Image
from safetensors.torch import save_file

from bearid import learner, params
from bearid.archs import bare_model, resolve
from bearid.params import ParamsError


@pytest.fixture
def dls_of(tmp_path, monkeypatch):
    """Data loaders over eight solid-colour images in two classes, for the given train params."""
    monkeypatch.chdir(tmp_path)
    rows = []
    for i in range(8):
        label = "red" if i % 2 else "blue"
        path = Path(f"{label}{i}.png")
        Image.new("RGB", (20, 20), (200, 0, i) if label == "red" else (0, i, 200)).save(path)
        rows.append({"path": path.as_posix(), "label": label, "split": "valid" if i < 2 else "train"})
    manifest = pd.DataFrame(rows)

    def make(**overrides):
        p = project_params("train", **{"img_size": 16, "batch_size": 4, "augment": False, **overrides})
        return learner.dataloaders(manifest, p), p
    return make


def test_pretrained_file_loads_the_body_and_leaves_the_head_new(dls_of, tmp_path):
    torch.manual_seed(1)
    weights = bare_model(resolve("resnet18")).state_dict()
    path = tmp_path / "weights.safetensors"
    save_file(weights, path)
    dls, p = dls_of(pretrained=str(path))
    learn = learner.build_learner(dls, p, tmp_path)

    body = learn.model[0].state_dict()
    assert body["0.weight"].equal(weights["conv1.weight"])
    assert body["4.0.conv1.weight"].equal(weights["layer1.0.conv1.weight"])
    assert body["7.1.bn2.running_var"].equal(weights["layer4.1.bn2.running_var"])
    assert learn.model[1][-1].out_features == 2  # a new head for our classes, not ImageNet's 1000

    dls, p = dls_of(pretrained=False)
    scratch = learner.build_learner(dls, p, tmp_path)
    assert not scratch.model[0].state_dict()["0.weight"].equal(weights["conv1.weight"])


def test_pretrained_torch_file_is_read_without_pickle_code(dls_of, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(bare_model(resolve("resnet18")).state_dict(), path)
    dls, p = dls_of(pretrained=str(path))
    learn = learner.build_learner(dls, p, tmp_path)
    assert learn.model[0].state_dict()["0.weight"].equal(torch.load(path, weights_only=True)["conv1.weight"])


def test_weights_of_another_arch_name_the_file(dls_of, tmp_path):
    path = tmp_path / "resnet34.safetensors"
    save_file(bare_model(resolve("resnet34")).state_dict(), path)
    dls, p = dls_of(pretrained=str(path))
    with pytest.raises(ParamsError, match=r"train.pretrained: .*resnet34.safetensors does not hold resnet18"):
        learner.build_learner(dls, p, tmp_path)


def test_missing_torchvision_cache_is_a_clear_error_not_a_download(dls_of, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    dls, p = dls_of(pretrained=True)
    with pytest.raises(FileNotFoundError, match="not in the torchvision cache"):
        learner.build_learner(dls, p, tmp_path)


def test_missing_weights_file_is_a_params_error():
    with pytest.raises(ParamsError, match=r"train.pretrained: weights file 'nowhere.pth' not found"):
        project_params("train", pretrained="nowhere.pth")


def test_fastai_arch_by_name(dls_of, tmp_path):
    dls, p = dls_of(arch="xresnet18")
    learn = learner.build_learner(dls, p, tmp_path)
    assert learn.model(dls.one_batch()[0]).shape == (4, 2)


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert learner.pick_device("auto").type == "cpu"
    assert learner.pick_device("cpu").type == "cpu"
    with pytest.raises(ParamsError, match="train.device=cuda"):
        learner.pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert learner.pick_device("auto").type == "cuda"


def test_mixed_precision_and_channels_last_callbacks(dls_of, tmp_path):
    dls, p = dls_of()  # auto on a CPU: full precision
    learn = learner.build_learner(dls, p, tmp_path)
    assert not any(isinstance(cb, (MixedPrecision, ChannelsLast)) for cb in learn.cbs)
    dls, p = dls_of(channels_last=True, mixed_precision=False)
    assert any(isinstance(cb, ChannelsLast) for cb in learner.build_learner(dls, p, tmp_path).cbs)
    dls, p = dls_of(mixed_precision=True)
    with pytest.raises(ParamsError, match="mixed_precision=true needs a CUDA device"):
        learner.build_learner(dls, p, tmp_path)


def test_augmentation_adds_fastai_batch_transforms(dls_of):
    plain, _ = dls_of()
    augmented, _ = dls_of(augment=True, aug={"max_rotate": 5.0, "do_flip": False})
    names = lambda dls: [type(t).__name__ for t in dls.train.after_batch.fs]  # noqa: E731
    assert "Rotate" not in " ".join(names(plain)) and "Normalize" in names(plain)
    assert len(names(augmented)) > len(names(plain))


CURVE = [(1e-7 * 10 ** (i / 10), loss) for i, loss in enumerate(
    [2.0] * 10 + [2.0 - 0.08 * k for k in range(20)] + [0.4 + 0.3 * k for k in range(20)])]


@pytest.mark.parametrize("method", params.SUGGESTIONS)
def test_each_suggestion_method_picks_a_rate_on_the_falling_part(method):
    lr = learner.suggest_lr(CURVE, num_it=len(CURVE), method=method)
    falling = [lr for lr, _ in CURVE[5:32]]
    assert min(falling) <= lr <= max(falling), (method, lr)


def test_a_curve_that_diverges_at_once_suggests_its_lowest_rate():
    curve = [(1e-7, 2.0), (1e-6, math.nan)] + [(1e-5, math.inf)] * 8
    assert learner.suggest_lr(curve, num_it=10) == 1e-7


def test_lr_min_is_the_suggestion_capped_or_the_number_given():
    assert project_params("train", lr_min=1e-5).lr_min == 1e-5
    assert project_params("train", lr_min="auto").lr_min == "auto"
    with pytest.raises(ParamsError, match="train.lr_min"):
        project_params("train", lr_min="valley")
    with pytest.raises(ParamsError, match="train.suggest"):
        project_params("train", suggest="middle")


# --- timm architectures and the packaged ImageNet weights -------------------------------------------

def test_timm_arch_by_name_through_fastais_timm_body(dls_of, tmp_path):
    from fastai.vision.learner import TimmBody

    dls, p = dls_of(arch="efficientnet_lite0")
    learn = learner.build_learner(dls, p, tmp_path)
    assert isinstance(learn.model[0], TimmBody)
    assert learn.model(dls.one_batch()[0]).shape == (4, 2)


def test_unknown_arch_names_the_key_and_both_families():
    with pytest.raises(ParamsError, match=r"train.arch: unknown architecture 'efficientnet_lite9'; one of "
                                          r"\[.*'resnet18'.*\], or one of timm's \d+ \(timm.list_models"):
        project_params("train", **{"arch": "efficientnet_lite9"})


def test_pretrained_timm_body_gets_the_packaged_imagenet_weights(dls_of, tmp_path):
    from bearid import pretrained

    dls, p = dls_of(arch="efficientnet_lite0", pretrained=True)
    learn = learner.build_learner(dls, p, tmp_path)
    imagenet = pretrained.timm_state_dict("efficientnet_lite0")
    body = learn.model[0].model.state_dict()
    for key in ("conv_stem.weight", "blocks.3.1.conv_pw.weight", "bn2.running_var"):
        assert body[key].equal(imagenet[key]), key
    assert learn.model[1][-1].out_features == 2  # a new head, not ImageNet's classifier
    normalize = [t for t in dls.train.after_batch.fs if type(t).__name__ == "Normalize"]
    assert [normalize[0].mean.flatten().tolist(), normalize[0].std.flatten().tolist()] == [[0.5] * 3] * 2


def test_a_timm_weights_file_of_another_arch_is_refused_naming_it(dls_of, tmp_path):
    import timm

    path = tmp_path / "b0.safetensors"
    save_file(timm.create_model("efficientnet_b0", pretrained=False).state_dict(), path)
    dls, p = dls_of(arch="efficientnet_lite0", pretrained=str(path))
    with pytest.raises(ParamsError, match=r"train.pretrained: .*b0.safetensors does not hold timm efficientnet_lite0"):
        learner.build_learner(dls, p, tmp_path)


def test_a_changed_torchvision_cache_file_is_refused(dls_of, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(bare_model(resolve("resnet18")).state_dict(), cached)  # right shapes, not torchvision's bytes
    dls, p = dls_of(pretrained=True)
    with pytest.raises(ParamsError, match=r"resnet18-f37072fd.pth: its sha256 does not start with f37072fd"):
        learner.build_learner(dls, p, tmp_path)


# --- every batch at img_size --------------------------------------------------------------------------

@pytest.fixture
def odd_sizes(tmp_path, monkeypatch):
    """Images of assorted sizes and shapes, to be batched at one size."""
    monkeypatch.chdir(tmp_path)
    rows = []
    for i, size in enumerate([(50, 30), (64, 64), (31, 77), (90, 45), (40, 40), (70, 20), (33, 60), (80, 80)]):
        label = "a" if i % 2 else "b"
        Image.new("RGB", size, (30 * i, 100, 200 - 20 * i)).save(f"{i}.png")
        rows.append({"path": f"{i}.png", "label": label, "split": "valid" if i < 2 else "train"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("overrides", [
    {"augment": True, "aug": {"min_scale": 0.35}},
    {"resize": "random_resized_crop", "min_scale": 0.5},
    {"resize": "random_resized_crop", "min_scale": 0.3, "augment": True,
     "aug": {"min_scale": 0.5, "max_rotate": 20.0, "max_zoom": 1.5, "max_warp": 0.3}},
], ids=["aug_min_scale", "random_resized_crop", "both"])
def test_every_batch_is_exactly_img_size(odd_sizes, overrides):
    p = project_params("train", **{"img_size": 48, "batch_size": 6, **overrides})
    dls = learner.dataloaders(odd_sizes, p)
    for _ in range(5):  # fresh random crops each time
        for x, _ in dls.train:
            assert tuple(x.shape[1:]) == (3, 48, 48)
    x, _ = dls.valid.one_batch()
    assert tuple(x.shape[1:]) == (3, 48, 48)


def test_validation_squishes_the_whole_image_even_with_random_crops(odd_sizes):
    """Validation sees what the exported Predictor sees: no crop, whatever training does."""
    crop = project_params("train", **{"img_size": 32, "batch_size": 2, "resize": "random_resized_crop",
                                  "augment": True, "aug": {"min_scale": 0.3}})
    squish = project_params("train", **{"img_size": 32, "batch_size": 2})
    a, _ = learner.dataloaders(odd_sizes, crop).valid.one_batch()
    b, _ = learner.dataloaders(odd_sizes, squish).valid.one_batch()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # float rounding of an identity resample at most


def test_crop_params_are_checked():
    with pytest.raises(ParamsError, match="train.min_scale"):
        project_params("train", **{"min_scale": 0.0})
    with pytest.raises(ParamsError, match="train.aug.min_scale"):
        project_params("train", **{"aug": {"min_scale": 1.5}})
    with pytest.raises(ParamsError, match="train.resize"):
        project_params("train", **{"resize": "crop"})
