"""Bad input stops a stage at once with one line naming the culprit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bearid import stage
from bearid.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]


def test_user_error_exits_2_with_one_line(capsys):
    def body():
        raise ParamsError("train.lr: -1 is out of range")

    with pytest.raises(SystemExit) as exit_info:
        stage.run("train", body)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "train: error: train.lr: -1 is out of range\n"


def test_other_errors_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        stage.run("train", lambda: 1 / 0)


@pytest.mark.parametrize("params_yaml, stage_name, named", [
    ("train: {lr: -0.1}\n", "train", "train.lr"),
    ("train: {arch: resnet9000}\n", "train", "train.arch"),
    ("split: {valid_pct: 0.6, test_pct: 0.5}\n", "split", "split.valid_pct + split.test_pct"),
    ("fetch: {classes: []}\n", "fetch_urls", "fetch.classes"),
    ("fetch: {lr: 1}\n", "fetch_urls", "fetch: unknown keys ['lr']"),
    ("trian: {lr: 1}\n", "train", "unknown sections ['trian']"),
    ("train: {arch: efficientnet_b3, pretrained: true}\n", "train", "no offline ImageNet weights for 'efficientnet_b3'"),
    ("verify: {max_size: 64}\ntrain: {img_size: 128}\n", "train", "verify.max_size (64) is below train.img_size (128)"),
    ("verify: {max_size: 64}\ncrossval: {img_size: 96}\n", "crossval", "verify.max_size (64) is below crossval.img_size (96)"),
    ("verify: {max_size: 64}\nretrain: {overrides: {img_size: 128}}\n", "retrain",
     "verify.max_size (64) is below retrain.overrides.img_size (128)"),
])
def test_stage_rejects_bad_params_before_any_work(tmp_path, params_yaml, stage_name, named):
    (tmp_path / "params.yaml").write_text(params_yaml)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", f"stages.{stage_name}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()
