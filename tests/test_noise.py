import numpy as np

from bearid.noise import estimate, given_probs


def confident(n: int, k: int, rng: np.random.Generator, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Models that give each image's true class p, the rest shared; the true classes."""
    true = rng.integers(k, size=n)
    probs = np.full((n, k), (1 - p) / (k - 1))
    probs[np.arange(n), true] = p
    return probs, true


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
    rng = np.random.default_rng(2)
    probs, true = confident(500, 3, rng, p=0.995)
    given = true.copy()
    wrong = rng.choice(500, size=40, replace=False)
    given[wrong] = (true[wrong] + 1) % 3
    e = estimate(probs, given, 0.05, 0.0)
    assert e.below == 40
    assert 30 <= e.faults <= 40


def test_given_probs_picks_each_images_label():
    probs = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert given_probs(probs, np.array([1, 1])).tolist() == [0.9, 0.2]


def test_models_that_mostly_disagree_with_the_labels_are_no_evidence():
    rng = np.random.default_rng(3)
    probs, true = confident(300, 3, rng, p=0.995)  # sure of themselves...
    given = rng.integers(3, size=300)  # ...and agreeing with a third of the labels: chance
    e = estimate(probs, given, 0.05, min_agreement=0.7)
    assert e.below > 150 and e.agreement < 0.5
    assert e.faults == 0
    assert estimate(probs, given, 0.05, min_agreement=0.0).faults > 150  # what the gate holds back
