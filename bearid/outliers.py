"""Images unlike the rest in look: an out-of-place measure from a model's first layer.

A classifier's probabilities say little about an image of no class: trained
among other such images labelled at random, it can be sure of them. What those
images do show is other low-level statistics (colour, contrast, texture), and
a network's stem, its first activation layer, responds to exactly those. Each
image becomes the mean of each stem channel; a Gaussian with a shrunk
(Ledoit-Wolf) covariance, fitted to reference images, gives each image its
squared Mahalanobis distance, as a multiple of the median reference image's:
about 1 for a typical image, far above it for one unlike them all.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Mish, nn.Hardswish, nn.ELU)


def stem(model: nn.Module) -> nn.Module:
    """The first activation layer, in module order (else the first convolution)."""
    modules = list(model.modules())
    for kinds in (ACTIVATIONS, (nn.Conv2d,)):
        found = next((m for m in modules if isinstance(m, kinds)), None)
        if found is not None:
            return found
    raise ValueError(f"{type(model).__name__} has no activation or convolution layer to take statistics from")


def stem_statistics(model: nn.Module, batches) -> np.ndarray:
    """Per image, the mean of each stem channel, over batches of inputs (or (input, ...) tuples)."""
    per_batch: list[torch.Tensor] = []
    this_batch: list[torch.Tensor] = []

    def keep_first(module, inputs, output) -> None:  # a shared module may run again deeper in the net
        if not this_batch:
            this_batch.append(output.detach().float().mean(dim=(2, 3)).cpu())

    hook = stem(model).register_forward_hook(keep_first)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                this_batch.clear()
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
                per_batch.append(this_batch[0])
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(per_batch).numpy().astype(np.float64)


def distance_ratio(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each query row from the reference rows, in median reference ones."""
    if len(reference) < 2:
        raise ValueError(f"need at least 2 reference images to measure distances, got {len(reference)}")
    mean, scale = reference.mean(0), reference.std(0)
    scale[scale == 0] = 1.0  # a constant channel carries no information; leave it unscaled
    gaussian = LedoitWolf().fit((reference - mean) / scale)
    typical = np.median(gaussian.mahalanobis((reference - mean) / scale))
    return gaussian.mahalanobis((query - mean) / scale) / max(typical, 1e-12)


def appearance_score(ratio: np.ndarray) -> np.ndarray:
    """A distance ratio as a score in [0, 1]: 0 up to a typical image's distance, 1 - 1/ratio beyond."""
    return 1.0 - 1.0 / np.maximum(np.asarray(ratio, dtype=np.float64), 1.0)
