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

Pooled out-of-sample probabilities are also too soft: averaging two models,
each a little unsure, spreads mass into every class, and that mass is exactly
what the expectation counts. On the colour-varied demo the pooled
probabilities expected 9.2 contradictions where 17 occurred, every one a
mislabeled image. So the probabilities are first calibrated (`calibrate`): a
temperature and a label-noise rate are fitted together to the given labels by
maximum likelihood, each label taken to be drawn from the calibrated
probabilities at 1 - noise and to be any other class at random otherwise. A
wrong label is as likely beside a sure prediction as beside an unsure one, the
models' own uncertainty is not; so the noise term takes the contradicted
labels, and they no longer pull the temperature soft, as they do when a
temperature alone is fitted to noisy labels. The data shows label noise
only if the noise term improves the fit beyond chance (a likelihood-ratio test
at 5%); where it does not, the temperature is fitted alone and no fault is
evident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize_scalar

CHI2_95 = 3.841  # 95th percentile of chi-square with one degree of freedom: the likelihood-ratio test's bound
TEMPERATURES = (0.05, 20.0)  # the fit's range: from near one-hot to near uniform
NOISE_RATES = (0.0, *np.geomspace(0.001, 0.5, 40).round(5))  # 0, then steps of 17%


@dataclass(frozen=True)
class NoiseEstimate:
    threshold: float  # p(given label) at or below which an image counts as contradicted
    images: int
    below: int  # images whose given label the models give at most `threshold`
    expected: float  # how many of them data without faults would show
    agreement: float  # share of labels the models' top class agrees with
    min_agreement: float  # below it the models are too weak to be evidence
    faults: int  # evident faults: below - expected - 2 sd, never negative; 0 below min_agreement or without noise
    temperature: float = 1.0  # the calibration's; below and expected count the calibrated probabilities
    noise_rate: float = 0.0  # the share of labels the calibration takes to be drawn at random
    noise_evidence: float = 0.0  # likelihood-ratio statistic for that share; noise is evident above CHI2_95

    def why_no_faults(self) -> str:
        """The gate that holds the count at 0, in words ('' where none does), from the recorded values."""
        if self.agreement < self.min_agreement:
            return f"the agreement is below interpret.min_agreement {self.min_agreement:g}"
        if self.noise_evidence <= CHI2_95:
            return "the labels show no noise"
        return ""


@dataclass(frozen=True)
class Calibration:
    temperature: float
    noise_rate: float
    evidence: float  # twice the log-likelihood the noise term gains over the temperature alone

    @property
    def noisy(self) -> bool:
        return self.evidence > CHI2_95


def given_probs(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Each image's probability of its given label."""
    return probs[np.arange(len(given)), given]


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """`probs` sharpened (temperature below 1) or softened (above), each row still summing to 1."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    weights = np.exp(logits - logits.max(1, keepdims=True))
    return weights / weights.sum(1, keepdims=True)


def label_nll(probs: np.ndarray, given: np.ndarray, temperature: float, noise_rate: float) -> float:
    """Mean negative log-likelihood of the given labels, each drawn from the scaled probabilities or,
    at `noise_rate`, uniformly from the other classes."""
    q = given_probs(scaled(probs, temperature), given)
    k = probs.shape[1]
    return float(-np.log((1.0 - noise_rate) * q + noise_rate * (1.0 - q) / (k - 1) + 1e-300).mean())


def calibrate(probs: np.ndarray, given: np.ndarray) -> Calibration:
    """The temperature and label-noise rate that best explain the given labels (maximum likelihood).

    The likelihood can have two peaks (a few contradictions explained by noise or by a softer
    temperature), so the noise rate is searched on a grid, the temperature fitted at each point."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(given) == 0 or probs.shape[1] < 2:
        return Calibration(temperature=1.0, noise_rate=0.0, evidence=0.0)
    logs = tuple(math.log(t) for t in TEMPERATURES)
    fits = [(rate, minimize_scalar(lambda lt: label_nll(probs, given, math.exp(lt), rate), bounds=logs,
                                   method="bounded")) for rate in NOISE_RATES]
    (_, alone), (rate, joint) = fits[0], min(fits, key=lambda f: f[1].fun)
    # rounded as noise.json records them, so the gates and interpret's scaling read the recorded values
    evidence = round(max(0.0, 2.0 * len(given) * float(alone.fun - joint.fun)), 2)
    if evidence <= CHI2_95:
        return Calibration(temperature=round(math.exp(alone.x), 4), noise_rate=0.0, evidence=evidence)
    return Calibration(temperature=round(math.exp(joint.x), 4), noise_rate=float(rate), evidence=evidence)


def estimate(probs: np.ndarray, given: np.ndarray, threshold: float, min_agreement: float) -> NoiseEstimate:
    """The evident number of label faults among images with these out-of-sample probabilities,
    counted on the probabilities calibrated to the labels (`scaled` by the returned temperature)."""
    c = calibrate(probs, given)
    probs = scaled(np.asarray(probs, dtype=np.float64), c.temperature)
    chance = np.where(probs <= threshold, probs, 0.0).sum(1)  # P(p(label) <= t) if labels were drawn from probs
    below = int((given_probs(probs, given) <= threshold).sum())
    expected = float(chance.sum())
    sd = math.sqrt(float((chance * (1.0 - chance)).sum()))
    agreement = float((probs.argmax(1) == given).mean()) if len(given) else 0.0
    gated = NoiseEstimate(threshold=threshold, images=len(given), below=below, expected=round(expected, 3),
                          agreement=round(agreement, 4), min_agreement=min_agreement, faults=0,
                          temperature=c.temperature, noise_rate=round(c.noise_rate, 4), noise_evidence=c.evidence)
    if gated.why_no_faults():
        return gated
    return replace(gated, faults=max(0, math.floor(below - expected - 2.0 * sd)))
