"""outliers.py: stem statistics and the appearance distance that flags images unlike the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bearid.archs import bare_model, resolve
from bearid.outliers import appearance_score, distance_ratio, stem, stem_statistics


def test_stem_is_the_first_activation_else_the_first_convolution():
    resnet = bare_model(resolve("resnet18"))
    assert stem(resnet) is resnet.relu
    convs = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    assert stem(convs) is convs[0]
    with pytest.raises(ValueError, match="no activation or convolution"):
        stem(nn.Linear(3, 2))


def test_statistics_are_per_image_channel_means_of_the_first_call_only():
    shared = nn.ReLU()
    conv = nn.Conv2d(3, 2, 1, bias=False)
    model = nn.Sequential(conv, shared, nn.Conv2d(2, 5, 1), shared)  # the shared ReLU runs twice a forward
    x = torch.randn(6, 3, 4, 4)
    stats = stem_statistics(model, [(x[:4],), (x[4:],)])
    assert stats.shape == (6, 2)
    assert np.allclose(stats, torch.relu(conv(x)).mean(dim=(2, 3)).detach().numpy(), atol=1e-6)
    assert model.training  # the mode it came in


def test_a_point_off_the_reference_cloud_is_far_and_typical_ones_are_near_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 8))
    queries = np.vstack([rng.normal(size=(50, 8)), np.full((1, 8), 6.0)])
    ratio = distance_ratio(reference, queries)
    assert ratio.argmax() == 50 and ratio[50] > 20
    assert 0.5 < np.median(ratio[:50]) < 2
    constant = np.hstack([reference, np.ones((300, 1))])  # a dead channel must not divide by zero
    assert np.isfinite(distance_ratio(constant, np.hstack([queries, np.ones((51, 1))]))).all()
    with pytest.raises(ValueError, match="at least 2 reference"):
        distance_ratio(reference[:1], queries)


def test_appearance_score_is_zero_up_to_typical_and_tends_to_one():
    assert appearance_score(np.array([0.3, 1.0, 2.0, 5.0, 1e6])).tolist() == pytest.approx([0, 0, 0.5, 0.8, 1.0], abs=1e-5)


def test_a_colour_photo_among_grey_digits_stands_out_even_through_an_untrained_stem():
    torch.manual_seed(0)
    model = bare_model(resolve("resnet18")).eval()
    rng = np.random.default_rng(0)
    grey = np.zeros((60, 3, 32, 32), dtype=np.float32)
    for img in grey:  # a white stroke on black, in all three channels alike
        r, c = rng.integers(4, 20, 2)
        img[:, r:r + 10, c:c + 3] = 1.0
    photo = np.stack([np.full((32, 32), v) for v in (0.1, 0.5, 0.2)])[None] + rng.normal(0, 0.05, (1, 3, 32, 32))
    stats = stem_statistics(model, [torch.tensor(grey[:40])])
    queries = stem_statistics(model, [torch.tensor(np.vstack([grey[40:], photo]).astype(np.float32))])
    ratio = distance_ratio(stats, queries)
    assert ratio.argmax() == 20 and appearance_score(ratio)[20] > 0.8
