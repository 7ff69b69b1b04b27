import numpy as np
import pytest

from bearid.noise import CHI2_95, calibrate, estimate, given_probs, scaled


def confident(n: int, k: int, rng: np.random.Generator, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Models that give each image's true class a probability between low and high, the rest shared;
    the true classes."""
    true = rng.integers(k, size=n)
    p = rng.uniform(low, high, size=n)
    probs = np.repeat(((1 - p) / (k - 1))[:, None], k, axis=1)
    probs[np.arange(n), true] = p
    return probs, true


def flipped(true: np.ndarray, wrong: np.ndarray, k: int) -> np.ndarray:
    given = true.copy()
    given[wrong] = (true[wrong] + 1) % k
    return given


def noisy_world(seed: int, n: int = 500, k: int = 3, rate: float = 0.1):
    """Calibrated models, labels drawn from them, then `rate` of the labels moved to another class."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.3), size=n)
    true = np.array([rng.choice(k, p=p) for p in probs])
    wrong = rng.random(n) < rate
    return probs, flipped(true, wrong, k), wrong


def test_clean_labels_from_calibrated_models_give_no_faults():
    for seed in range(20):  # labels drawn from the models' own probabilities: the world they describe
        rng = np.random.default_rng(seed)
        probs = rng.dirichlet(np.full(3, 0.3), size=500)
        given = np.array([rng.choice(3, p=p) for p in probs])
        assert estimate(probs, given, 0.05, 0.0).faults <= 3


def test_weak_models_do_not_turn_their_mistakes_into_faults():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=400)  # models that know little
    given = np.array([rng.choice(3, p=p) for p in probs])
    e = estimate(probs, given, 0.05, 0.0)
    assert e.below > 0  # they do contradict some correct labels...
    assert e.faults == 0  # ...and no more than such models would anyway


def test_confident_contradictions_count_as_faults():
    rng = np.random.default_rng(0)
    probs, true = confident(500, 3, rng, 0.8, 0.9999)
    wrong = rng.choice(500, size=40, replace=False)
    e = estimate(probs, flipped(true, wrong, 3), 0.05, 0.0)
    assert e.below == 40
    assert 30 <= e.faults <= 40
    assert e.why_no_faults() == ""


def test_models_equally_sure_of_every_image_cannot_tell_noise_from_softness():
    rng = np.random.default_rng(2)
    probs, true = confident(500, 3, rng, 0.995, 0.995)
    wrong = rng.choice(500, size=40, replace=False)
    e = estimate(probs, flipped(true, wrong, 3), 0.05, 0.0)  # a softer temperature explains the 40 as well
    assert e.noise_evidence <= CHI2_95
    assert e.faults == 0  # so nothing is evident: the estimate errs towards doing nothing
    assert e.why_no_faults() == "the labels show no noise"


def test_soft_models_give_the_faults_calibrated_ones_do():
    for seed in range(5):
        probs, given, _ = noisy_world(seed)
        sharp, soft = estimate(probs, given, 0.05, 0.0), estimate(scaled(probs, 2.0), given, 0.05, 0.0)
        assert soft.temperature == pytest.approx(sharp.temperature / 2, rel=0.05)  # undone by calibration
        assert abs(soft.faults - sharp.faults) <= 1  # one image may sit at the threshold


def test_calibration_recovers_the_noise_rate():
    rates = [calibrate(*noisy_world(seed)[:2]).noise_rate for seed in range(10)]
    assert 0.06 <= np.mean(rates) <= 0.14  # 10% of the labels moved; some land where the models agree anyway


def test_calibration_finds_no_noise_in_labels_the_models_explain():
    evident = [calibrate(*noisy_world(seed, rate=0.0)[:2]).noisy for seed in range(20)]
    assert sum(evident) <= 3  # a 5% test: about one world in twenty by chance


def test_given_probs_picks_each_images_label():
    probs = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert given_probs(probs, np.array([1, 1])).tolist() == [0.9, 0.2]


def test_models_that_mostly_disagree_with_the_labels_are_no_evidence():
    rng = np.random.default_rng(3)
    probs, true = confident(300, 3, rng, 0.8, 0.9999)  # sure of themselves...
    given = rng.integers(3, size=300)  # ...and agreeing with a third of the labels: chance
    e = estimate(probs, given, 0.05, min_agreement=0.7)
    assert e.agreement < 0.5 and e.faults == 0
    assert e.why_no_faults() == "the agreement is below interpret.min_agreement 0.7"
    alone = estimate(probs, given, 0.05, min_agreement=0.0)  # the calibration alone holds them back too:
    assert alone.temperature > 5 and alone.faults == 0  # labels at chance say the models know nothing
