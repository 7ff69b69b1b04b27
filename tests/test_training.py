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
from helpers import project_params
from safetensors.torch import load_file

from bearid.archs import bare_model, body, resolve
from bearid.atomic import read_csv, write_csv
from bearid.demo import digit_images
from bearid.diagnosis import diagnose
from bearid.training import train_run

pytestmark = pytest.mark.slow  # real training runs: minutes on a 2-core CPU

CLASSES = {3: "three", 8: "eight"}
TINY = {"img_size": 32, "batch_size": 8, "lr_find_iters": 20, "freeze_epochs": 1, "epochs": 2, "augment": False}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digits(tmp_path_factory.mktemp("digits"))


def make_digits(root: Path) -> Path:
    """40 train and 20 valid images of two digits, paths relative to the returned folder."""
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
    p = project_params("train", **{**TINY, **overrides})
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


def check_records(root: Path, out: str, result: dict, lr: float) -> None:
    """What the run wrote agrees with what it returned."""
    verdict = result["diagnosis"]["verdict"]
    assert json.loads((root / out / "diagnosis.json").read_text())["verdict"] == verdict
    metrics = json.loads((root / out / "live" / "metrics.json").read_text())
    assert metrics["diagnosis"] == verdict and metrics["lr"] == lr
    assert (root / out / "show_batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fine_tune_schedule_is_logged_like_the_lessons(digits, monkeypatch):
    result = run(digits, "out-fine-tune-schedule", monkeypatch, schedule="fine_tune", freeze_epochs=1, epochs=2, lr=1e-2)
    out = digits / "out-fine-tune-schedule"
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


def test_lr_10_is_lr_too_high(digits, monkeypatch):
    """Recorded here: valid loss 1.8e7 after the run, chance 0.69: no CPU's rounding comes near the 3x rule."""
    result = run(digits, "out-lr-10", monkeypatch, lr=10.0)
    assert result["diagnosis"]["verdict"] == "lr_too_high", result["diagnosis"]["evidence"]
    check_records(digits, "out-lr-10", result, 10.0)


def test_lr_1e_6_is_lr_too_low(digits, monkeypatch):
    """Recorded here: the error rate moves by 0 to 1 image of 40 (BatchNorm statistics, not learning) against
    a noise band of 6; train loss ~1.5x valid loss. Both margins are far beyond float differences."""
    result = run(digits, "out-lr-1e-6", monkeypatch, lr=1e-6, lr_min=1e-7)
    assert result["diagnosis"]["verdict"] == "lr_too_low", result["diagnosis"]["evidence"]
    check_records(digits, "out-lr-1e-6", result, 1e-6)


def test_one_epoch_fine_tune_learns_and_is_diagnosed_by_its_curves(digits, body_weights, monkeypatch):
    """A loose end-to-end check. Whether one epoch is too few turns on the ratio of two small final losses,
    which differs between CPUs (recorded here: train 0.035, valid 0.131: ok; the machine that first wrote
    this test got too_few_epochs); tests/test_diagnosis.py pins the rule on the recorded curve. What holds
    anywhere: the fine-tuned body learned, no learning-rate failure is named, and the verdict is the rule
    applied to the history the run wrote."""
    result = run(digits, "out-fine-tune", monkeypatch, lr=1e-3, epochs=1, pretrained=str(body_weights))
    verdict = result["diagnosis"]["verdict"]
    assert verdict in {"too_few_epochs", "ok"}, result["diagnosis"]["evidence"]
    assert result["diagnosis"]["evidence"]["final_error_rate"] <= 0.25  # 0.075 here; chance is 0.5
    history = [{k: float(v) if k.endswith(("loss", "rate")) else v for k, v in row.items()}
               for row in read_csv(digits / "out-fine-tune" / "history.csv")]
    assert diagnose(history, project_params("train").diagnose,
                    n_valid=20 * len(CLASSES), n_classes=len(CLASSES))["verdict"] == verdict
    check_records(digits, "out-fine-tune", result, 1e-3)
