"""Architectures by name: every one fastai knows how to cut and split for transfer learning."""

from __future__ import annotations

from typing import Callable

from fastai.vision.learner import model_meta

ARCHS: dict[str, Callable] = {f.__name__: f for f in model_meta}
# aug_transforms arguments that make sense as params (plain numbers, flags, names)
AUG_KEYS = frozenset({"mult", "do_flip", "flip_vert", "max_rotate", "min_zoom", "max_zoom",
                      "max_lighting", "max_warp", "p_affine", "p_lighting", "pad_mode", "min_scale"})


def resolve(name: str) -> Callable:
    try:
        return ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; one of {sorted(ARCHS)}") from None
