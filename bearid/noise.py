"""How many label faults the data evidently holds, judged by the out-of-sample models themselves.

A weak model disagrees with many correct labels; counting its disagreements
counts its own mistakes as faults. So the count is taken against what the same
probabilities predict for data without faults: if every image's true class were
drawn from its out-of-sample probabilities, the chance that its label gets
p(label) <= t is the sum of its probabilities that are <= t. Images that do
fall at or below t beyond that expectation, less two standard deviations, are
faults the models are sure of (mislabeled images, and images of no class whose
label the models do not support). Weak or uncertain folds spread their
probabilities, raise the expectation and so lower the estimate: the less the
models know, the less the evidence allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoiseEstimate:
    threshold: float  # p(given label) at or below which an image counts as contradicted
    images: int
    below: int  # images whose given label the models give at most `threshold`
    expected: float  # how many of them data without faults would show
    faults: int  # evident faults: below - expected - 2 sd, never negative


def given_probs(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Each image's probability of its given label."""
    return probs[np.arange(len(given)), given]


def estimate(probs: np.ndarray, given: np.ndarray, threshold: float) -> NoiseEstimate:
    """The evident number of label faults among images with these out-of-sample probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    chance = np.where(probs <= threshold, probs, 0.0).sum(1)  # P(p(label) <= t) if labels were drawn from probs
    below = int((given_probs(probs, given) <= threshold).sum())
    expected = float(chance.sum())
    sd = math.sqrt(float((chance * (1.0 - chance)).sum()))
    faults = max(0, math.floor(below - expected - 2.0 * sd))
    return NoiseEstimate(threshold=threshold, images=len(given), below=below, expected=round(expected, 3),
                         faults=faults)
