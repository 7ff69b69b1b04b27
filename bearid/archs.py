"""Architectures by name: every one fastai knows how to cut and split for transfer learning."""

from __future__ import annotations

from typing import Callable

from fastai.vision.learner import create_body, model_meta
from torch import nn

ARCHS: dict[str, Callable] = {f.__name__: f for f in model_meta}


def bare_model(arch: Callable) -> nn.Module:
    """The full, randomly initialised network, built the way fastai builds it (no download)."""
    return arch(weights=None) if "weights" in model_meta[arch] else arch(pretrained=False)


def body(model: nn.Module, arch: Callable) -> nn.Sequential:
    """The part of `model` that vision_learner keeps as its body (sharing its modules)."""
    return create_body(model, pretrained=False, cut=model_meta[arch]["cut"])


def resolve(name: str) -> Callable:
    try:
        return ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; one of {sorted(ARCHS)}") from None
