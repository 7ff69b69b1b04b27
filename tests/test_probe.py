"""probe.py: held-out probabilities from a logistic regression on features, and pooling opinions."""

from __future__ import annotations

import numpy as np
import pytest

from bearid import probe


def clusters(per_class: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian clusters in 8 dimensions, labels 0, 1, 2."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8) * 6.0
    labels = np.repeat(np.arange(3), per_class)
    return centres[labels] + rng.normal(0, 1, (len(labels), 8)), labels


def test_a_flipped_label_gets_a_low_probability_because_its_row_was_held_out():
    emb, labels = clusters()
    given = labels.copy()
    given[[0, 40, 70]] = [1, 2, 0]  # three wrong labels
    folds = np.arange(len(given)) % 3
    probs = probe.held_out_probs(emb, given, folds, 3)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(1), 1)
    p_given = probs[np.arange(90), given]
    assert p_given[[0, 40, 70]].max() < 0.2  # measured: below 0.01
    assert np.median(np.delete(p_given, [0, 40, 70])) > 0.8  # measured: above 0.99
    assert (probs.argmax(1)[[0, 40, 70]] == labels[[0, 40, 70]]).all()  # the true class instead


def test_a_class_absent_from_a_folds_training_rows_gets_probability_zero_there():
    emb, labels = clusters(per_class=6)
    given = labels.copy()
    folds = np.zeros(len(given), dtype=int)
    folds[given != 0] = 1  # fold 0 trains on classes 1 and 2; fold 1 on class 0 alone
    probs = probe.held_out_probs(emb, given, folds, 3)
    held = folds == 0
    assert np.allclose(probs[held, 0], 0) and np.allclose(probs.sum(1), 1)
    assert (probs[held].argmax(1) != 0).all()
    assert np.allclose(probs[~held], 1 / 3)  # one class to learn from: no opinion


def test_a_probe_needs_two_classes():
    emb, labels = clusters(per_class=4)
    with pytest.raises(ValueError, match="at least two classes, got 1"):
        probe.fit(emb[labels == 0], labels[labels == 0])


def test_few_images_per_class_fit_without_an_inner_cross_validation():
    emb, labels = clusters(per_class=2)
    model = probe.fit(emb, labels)
    assert model.predict(emb).tolist() == labels.tolist()


def test_pool_is_the_mean_of_the_opinions():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.5, 0.5], [0.0, 1.0]])
    assert np.allclose(probe.pool(a, b), [[0.7, 0.3], [0.1, 0.9]])
