"""training.py: real short runs on a tiny digits set drive the lesson's failure modes.

(That a rerun gives byte-identical records is tested through `dvc repro --force`
in test_pipeline.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from bearid import params
from bearid.archs import bare_model, body, resolve
from bearid.atomic import write_csv
from bearid.demo import digit_images
from bearid.training import train_run

CLASSES = {3: "three", 8: "eight"}
TINY = {"img_size": 32, "batch_size": 8, "lr_find_iters": 20, "freeze_epochs": 1, "epochs": 2}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """40 train and 20 valid images of two digits, paths relative to the returned folder."""
    root = tmp_path_factory.mktemp("digits")
    images, targets = digit_images(32)
    rng = np.random.default_rng(0)
    rows = []
    for digit, name in CLASSES.items():
        for k, i in enumerate(rng.permutation(np.flatnonzero(targets == digit))[:60]):
            path = Path(name) / f"{i}.png"
            (root / name).mkdir(exist_ok=True)
            images[i].save(root / path)
            rows.append({"path": path.as_posix(), "label": name, "split": "train" if k < 40 else "valid"})
    write_csv(root / "manifest.csv", rows, ["path", "label", "split"])
    return root


def run(root: Path, out: str, monkeypatch, **overrides) -> dict:
    monkeypatch.chdir(root)
    p = params.parse("train", {**TINY, **overrides})
    return train_run(Path("manifest.csv"), p, Path(out), "train")


@pytest.fixture(scope="module")
def body_weights(digits) -> Path:
    """A resnet18 state dict whose body learned these digits: the stand-in for ImageNet
    weights, so that a short fine-tune behaves as in the lesson."""
    with pytest.MonkeyPatch.context() as mp:
        run(digits, "pretrain", mp, freeze_epochs=0, epochs=4, lr=1e-2)
    arch = resolve("resnet18")
    model = bare_model(arch)
    trained = load_file(digits / "pretrain" / "model.safetensors")
    body(model, arch).load_state_dict(  # the body shares its modules with `model`
        {k[2:]: v for k, v in trained.items() if k.startswith("0.")})
    path = digits / "body.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("overrides, verdict", [
    ({"lr": 10.0}, "lr_too_high"),
    ({"lr": 1e-6, "lr_min": 1e-7, "epochs": 3}, "lr_too_low"),
    ({"lr": 1e-3, "freeze_epochs": 1, "epochs": 1, "pretrained": "body"}, "too_few_epochs"),
], ids=["lr_10", "lr_1e-6", "one_epoch_fine_tune"])
def test_real_runs_get_the_lessons_verdicts(request, digits, monkeypatch, overrides, verdict):
    if overrides.get("pretrained") == "body":
        overrides = {**overrides, "pretrained": str(request.getfixturevalue("body_weights"))}
    result = run(digits, f"out-{verdict}", monkeypatch, **overrides)
    assert result["diagnosis"]["verdict"] == verdict, result["diagnosis"]["evidence"]
    written = json.loads((digits / f"out-{verdict}" / "diagnosis.json").read_text())
    assert written["verdict"] == verdict
    metrics = json.loads((digits / f"out-{verdict}" / "live" / "metrics.json").read_text())
    assert metrics["diagnosis"] == verdict and metrics["lr"] == overrides["lr"]
    assert (digits / f"out-{verdict}" / "show_batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fine_tune_schedule_is_logged_like_the_lessons(digits, monkeypatch):
    result = run(digits, "out-fine-tune", monkeypatch, schedule="fine_tune", freeze_epochs=1, epochs=2, lr=1e-2)
    out = digits / "out-fine-tune"
    history = pd.read_csv(out / "history.csv")
    assert history["phase"].tolist() == ["frozen", "unfrozen", "unfrozen"]
    assert history["epoch"].tolist() == [0, 1, 2]
    for curve in ("eval/loss.tsv", "train/loss.tsv", "error_rate.tsv"):  # one DVCLive step per epoch, both phases
        assert pd.read_csv(out / "live" / "plots" / "metrics" / curve, sep="\t")["step"].tolist() == [0, 1, 2]
    metrics = json.loads((out / "live" / "metrics.json").read_text())
    assert metrics["lr"] == 1e-2 and metrics["lr_min"] == pytest.approx(1e-2 / 200)
    assert len(pd.read_csv(out / "lr_find.csv")) > 5  # the finder ran on the frozen model before fine_tune
    assert result["schedule"].lr_find_phase == "frozen"
    assert (out / "show_batch.png").stat().st_size > 1000

