"""Architectures by name: every torchvision one fastai knows how to cut and split for transfer
learning, and timm's, which fastai's `vision_learner` builds by name (its timm body)."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from fastai.vision.learner import create_body, create_timm_model, create_vision_model, model_meta
from torch import nn

ARCHS: dict[str, Callable] = {f.__name__: f for f in model_meta}


@lru_cache(maxsize=1)
def timm_archs() -> frozenset[str]:
    """timm's architecture names; importing timm costs seconds, so only when a name is not torchvision's."""
    import timm
    return frozenset(timm.list_models())


def is_timm(name: str) -> bool:
    return name not in ARCHS and name in timm_archs()


def check(name: str, key: str = "train.arch") -> None:
    """Unknown names fail naming the key and what is available."""
    if name not in ARCHS and not is_timm(name):
        raise ValueError(f"{key}: unknown architecture {name!r}; one of {sorted(ARCHS)}, or one of timm's "
                         f"{len(timm_archs())} (timm.list_models(), e.g. efficientnet_lite0)")


def bare_model(arch: Callable) -> nn.Module:
    """The full, randomly initialised network, built the way fastai builds it (no download)."""
    return arch(weights=None) if "weights" in model_meta[arch] else arch(pretrained=False)


def body(model: nn.Module, arch: Callable) -> nn.Sequential:
    """The part of `model` that vision_learner keeps as its body (sharing its modules)."""
    return create_body(model, pretrained=False, cut=model_meta[arch]["cut"])


def resolve(name: str) -> Callable | str:
    """What `vision_learner` takes: a torchvision function, or a timm name as it is."""
    check(name, "arch")
    return ARCHS.get(name, name)


def network(name: str, n_out: int, ps: float = 0.5) -> nn.Module:
    """vision_learner's network (body + new head) without weights to load: what an export holds."""
    if is_timm(name):
        return create_timm_model(name, n_out, pretrained=False, ps=ps)[0]
    return create_vision_model(resolve(name), n_out, pretrained=False, ps=ps)
