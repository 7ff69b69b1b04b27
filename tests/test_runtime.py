"""runtime.py: the network under ONNX Runtime gives the PyTorch model's answers, at any batch size."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from bearid.predict import Predictor
from bearid.runtime import OnnxNetwork
from bearid.serve import ServeConfig, load_predictor, main


@pytest.mark.parametrize("n", [1, 5])
def test_onnxruntime_gives_the_models_logits(model_dir, n):
    predictor = Predictor(model_dir)
    network = OnnxNetwork(predictor.model, predictor.size)
    x = torch.randn(n, 3, predictor.size, predictor.size, generator=torch.Generator().manual_seed(n))
    with torch.inference_mode():
        expected = predictor.model(x)
    got = network(x.contiguous(memory_format=torch.channels_last))
    assert got.shape == (n, len(predictor.classes))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_the_servers_predictor_answers_as_the_torch_one(model_dir):
    batch = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    served = load_predictor(ServeConfig(model=model_dir, threads=1))
    plain = load_predictor(ServeConfig(model=model_dir, threads=1, runtime="torch"))
    assert isinstance(served.network, OnnxNetwork) and plain.network is plain.model
    np.testing.assert_allclose(served.forward(batch), plain.forward(batch), atol=1e-5)


def test_a_missing_runtime_package_is_one_line_naming_it(model_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert main(["--model", str(model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "onnxruntime is missing" in err and "--runtime torch" in err and "\n" not in err
