"""export.py + predict.py: safetensors + JSON round trip, and CPU prediction equal to a manual forward pass."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
import torchvision
from fastai.vision.learner import create_vision_model
from PIL import Image
from safetensors.torch import load_file

from bearid.export import META, WEIGHTS, load_model, read_meta, save_model
from bearid.params import TrainParams
from bearid.predict import Predictor

CLASSES = ["black", "grizzly", "teddy"]
STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
P = TrainParams(img_size=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = create_vision_model(torchvision.models.resnet18, len(CLASSES), pretrained=False).eval()
    out = tmp_path_factory.mktemp("model")
    meta = save_model(model, CLASSES, P, STATS, out)
    return model, meta, out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, mode) in enumerate([((40, 30), "RGB"), ((32, 32), "RGB"), ((17, 50), "L"), ((64, 64), "RGBA")]):
        array = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8).squeeze()
        path = folder / f"{i}.png"
        Image.fromarray(array, mode).save(path)
        paths.append(path)
    return paths


def test_meta(exported):
    _, meta, out = exported
    on_disk = json.loads((out / META).read_text())
    assert on_disk == meta == read_meta(out)
    assert meta["arch"] == "resnet18" and meta["classes"] == CLASSES
    assert meta["img_size"] == 32 and meta["resize"] == "squish"
    assert meta["mean"] == STATS[0] and meta["std"] == STATS[1]
    assert meta["weights_sha256"] == hashlib.sha256((out / WEIGHTS).read_bytes()).hexdigest()
    assert meta["params"] == {**dataclasses.asdict(TrainParams()), "img_size": 32}
    assert not list(out.glob(".*"))  # no temp files left


def test_weights_are_plain_safetensors(exported):
    model, _, out = exported
    state = load_file(out / WEIGHTS)
    assert set(state) == set(model.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_load_model_gives_identical_state(exported):
    model, meta, out = exported
    loaded, loaded_meta = load_model(out)
    assert loaded_meta == meta and not loaded.training
    original, again = model.state_dict(), loaded.state_dict()
    assert list(again) == list(original)
    for key in original:
        assert torch.equal(original[key], again[key]), key


@pytest.fixture(scope="module")
def predictor(exported) -> Predictor:
    return Predictor(exported[2])


def test_predict_files_matches_manual_forward_pass(exported, predictor, images):
    model = exported[0]
    assert predictor.classes == CLASSES
    probs = predictor.predict_files(images, batch_size=3)  # two batches
    assert probs.shape == (len(images), len(CLASSES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    batch = []
    for path in images:
        image = Image.open(path).convert("RGB").resize((32, 32), Image.BILINEAR)
        batch.append(torch.tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1) / 255)
    x = (torch.stack(batch) - torch.tensor(STATS[0]).view(1, 3, 1, 1)) / torch.tensor(STATS[1]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    # one batch or two: the same numbers
    np.testing.assert_allclose(predictor.predict_files(images, batch_size=64), probs, atol=1e-5)


def test_predict_files_empty(predictor):
    assert predictor.predict_files([]).shape == (0, len(CLASSES))
