"""Images unlike every class in what they show: neighbours in a pretrained network's features.

The appearance score (`outliers`) measures colour and texture, so on real photos
it flags a bright teddy or a black bear on grass. An ImageNet network's deeper
features describe content instead: images of one class sit near each other
whatever their colours, and an image of no class sits far from all of them.

Each image is embedded once (`embed`); `knn_out_of_place` then scores it by
its distance to its nearest images of the class it is nearest to, compared
with how near that class's own images sit to each other.

The features are the head's (1280 channels), not a middle block's: among
grey digits with a few in bright colours (a bright teddy's stand-in), blocks 3
and 4 scored every coloured digit above 0.8 while the head ranked them all
below every photo crop; on the demo every layer finds the crops. The head's
map is pooled over the image by its maximum for this score (`OOD_POOL`): a
mean blurs a faint digit's stroke into its background until a nearly flat
crop averages alike, a maximum keeps the stroke's peak. On nine colour-varied
demo worlds (`benchmarks/ood_pooling.py`) the mean put 117 of the 144 crops at
a score of 0.7 or more and 85 of the 4464 good images, the maximum 139 and 27.
The feature probe (`probe`) keeps the mean, the pooling the ImageNet
classifier was trained on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import pretrained

ARCH = "efficientnet_lite0"
USE = pretrained.Use("interpret.ood_method", "embedding", "appearance")
POOLS = ("avg", "max")
OOD_POOL = "max"
DUPLICATE = 1e-3  # rows closer than this are copies of one image: never each other's neighbours
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation in median absolute deviations


def load(path: str | Path, size: int) -> torch.Tensor:
    """An image as RGB floats in [0, 1], squished to size x size (the training's resize)."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)


def features(model: torch.nn.Module, x: torch.Tensor, pool: str = "avg") -> torch.Tensor:
    """The head's feature map of a batch (before the ImageNet classifier), pooled over space by the
    model's own pooling, a mean ("avg"), or by its maximum ("max")."""
    if pool not in POOLS:
        raise ValueError(f"unknown pooling {pool!r}; one of {list(POOLS)}")
    fmap = model.forward_features(x)
    return model.forward_head(fmap, pre_logits=True) if pool == "avg" else fmap.amax(dim=(2, 3))


def embed(paths: Sequence[str | Path], size: int, batch_size: int, use: pretrained.Use = USE,
          pool: str = "avg") -> np.ndarray:
    """One L2-normalised row of pretrained features per image, on the CPU, from the installed weights only
    (unit rows: a dot product is a cosine, and distances compare across images of any contrast)."""
    model = pretrained.imagenet_model(ARCH, use)
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in pretrained.stats(ARCH))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            x = torch.stack([load(p, size) for p in paths[start:start + batch_size]])
            rows.append(features(model, (x - mean) / std, pool).float())
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.nn.functional.normalize(torch.cat(rows), dim=1).numpy()


def class_distances(emb: np.ndarray, members: np.ndarray, k: int) -> np.ndarray:
    """Each unit row's mean distance to its k nearest rows among `members` (a mask), itself and its copies
    excluded (inf where none is left)."""
    ref = emb[members]
    d = np.sqrt(np.maximum(2.0 - 2.0 * emb @ ref.T, 0.0))  # unit rows: Euclidean from the dot product
    d[np.flatnonzero(members), np.arange(len(ref))] = np.inf  # leave-one-out
    d[d < DUPLICATE] = np.inf  # copies too: a duplicated outlier stays an outlier
    n = min(k, len(ref))
    nearest = np.sort(d, axis=1)[:, :n]
    counted = np.isfinite(nearest)
    total = np.where(counted, nearest, 0.0).sum(1)
    return np.where(counted.any(1), total / np.maximum(counted.sum(1), 1), np.inf)


def knn_out_of_place(emb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """How unlike every class each image is, in [0, 1]: 0 for typical images, 0.8 four spreads beyond them.

    Per class, an image's distance is its mean distance to that class's k nearest
    images (leave-one-out); its nearest class is the one with the smallest. Only
    the nearest class counts, so an image labelled B that sits among class A is
    typical (the mislabel ranking finds it), not out of place. Classes differ in
    how tightly their images gather, so the distance becomes a robust z-score
    against that class's own images' distances to it: median and scaled median
    absolute deviation, which the class's few odd images (out of place or
    mislabeled) barely move. z <= 0 scores 0, larger z maps to z / (1 + z): 0.5
    at one spread beyond the median, 0.8 at four, well past what a class's own
    images show, and 1 only in the limit, so scores stay ordered.
    """
    emb = np.asarray(emb, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    _, label = np.unique(np.asarray(labels), return_inverse=True)
    if len(emb) != len(label):
        raise ValueError(f"{len(emb)} embeddings but {len(label)} labels")
    if k < 1:
        raise ValueError(f"interpret.knn_k: {k} must be at least 1")
    if not len(label):
        return np.zeros(0)
    classes = range(label.max() + 1)
    dist = np.stack([class_distances(emb, label == c, k) for c in classes], axis=1)
    nearest = dist.argmin(1)
    near = dist[np.arange(len(dist)), nearest]
    if not np.isfinite(near).all():
        raise ValueError("every image needs a neighbour other than its own copies; "
                         "knn_out_of_place needs at least two distinct images")
    z = np.zeros(len(near))
    for c in classes:
        own = dist[label == c, c]
        own = own[np.isfinite(own)]
        if not len(own):
            continue
        median = np.median(own)
        spread = max(MAD_TO_SD * np.median(np.abs(own - median)), 1e-6 * max(median, 1e-12), 1e-12)
        z[nearest == c] = (near[nearest == c] - median) / spread
    z = np.maximum(z, 0.0)
    return z / (1.0 + z)


def embedding_scores(paths: Sequence[str | Path], labels: Sequence, size: int, k: int,
                     batch_size: int) -> tuple[np.ndarray, float]:
    """Out-of-place scores of the images and the seconds their embedding took."""
    start = time.perf_counter()
    emb = embed(paths, size, batch_size, pool=OOD_POOL)
    seconds = time.perf_counter() - start
    return knn_out_of_place(emb, np.asarray(labels), k), seconds
