"""How many label faults the data evidently holds, judged by the out-of-sample models themselves.

A weak model disagrees with many correct labels; counting its disagreements
counts its own mistakes as faults. So the count is taken against what the same
probabilities predict for data without faults: if every image's true class were
drawn from its out-of-sample probabilities, the chance that its label gets
p(label) <= t is the sum of its probabilities that are <= t. Images that do
fall at or below t beyond that expectation, less two standard deviations, are
faults the models are sure of (mislabeled images, and images of no class whose
label the models do not support). Uncertain folds spread their
probabilities, raise the expectation and so lower the estimate.

That reasoning needs models whose confidence means something, and a weak
model trained from scratch can be sure and wrong: on the colour-varied demo
without a single fault, fold models that agreed with 39% of the labels (three
classes: chance is 33%) contradicted 13 labels at p <= 0.05 where their
probabilities expected 0.7. So the models must first agree with at least
`min_agreement` of the given labels, or their contradictions count as no
evidence at all.
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
    agreement: float  # share of labels the models' top class agrees with
    min_agreement: float  # below it the models are too weak to be evidence
    faults: int  # evident faults: below - expected - 2 sd, never negative; 0 below min_agreement


def given_probs(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Each image's probability of its given label."""
    return probs[np.arange(len(given)), given]


def estimate(probs: np.ndarray, given: np.ndarray, threshold: float, min_agreement: float) -> NoiseEstimate:
    """The evident number of label faults among images with these out-of-sample probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    chance = np.where(probs <= threshold, probs, 0.0).sum(1)  # P(p(label) <= t) if labels were drawn from probs
    below = int((given_probs(probs, given) <= threshold).sum())
    expected = float(chance.sum())
    sd = math.sqrt(float((chance * (1.0 - chance)).sum()))
    agreement = float((probs.argmax(1) == given).mean()) if len(given) else 0.0
    faults = max(0, math.floor(below - expected - 2.0 * sd)) if agreement >= min_agreement else 0
    return NoiseEstimate(threshold=threshold, images=len(given), below=below, expected=round(expected, 3),
                         agreement=round(agreement, 4), min_agreement=min_agreement, faults=faults)
