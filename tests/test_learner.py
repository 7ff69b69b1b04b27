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
