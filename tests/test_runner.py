"""Bad input stops a stage at once with one line naming the culprit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import merge

from bearid import runner
from bearid.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]


def test_user_error_exits_2_with_one_line(capsys):
    def body():
        raise ParamsError("train.lr: -1 is out of range")

    with pytest.raises(SystemExit) as exit_info:
        runner.run("train", body)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "train: error: train.lr: -1 is out of range\n"


def test_other_errors_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        runner.run("train", lambda: 1 / 0)


@pytest.mark.parametrize("change, stage_name, named", [
    ({"train": {"lr": -0.1}}, "train", "train.lr"),
    ({"train": {"arch": "resnet9000"}}, "train", "train.arch"),
    ({"split": {"valid_pct": 0.6, "test_pct": 0.5}}, "split", "split.valid_pct + split.test_pct"),
    ({"fetch": {"classes": []}}, "fetch_urls", "fetch.classes"),
    ({"fetch": {"lr": 1}}, "fetch_urls", "fetch: unknown keys ['lr']"),
    ({"trian": {"lr": 1}}, "train", "unknown sections ['trian']"),
    ({"train": {"wd": None}}, "train", "train.wd: None must be a number"),
    ({"train": {"arch": "efficientnet_b3", "pretrained": True}}, "train",
     "no offline ImageNet weights for 'efficientnet_b3'"),
    ({"verify": {"max_size": 64}, "train": {"img_size": 128}}, "train",
     "verify.max_size (64) is below train.img_size (128)"),
    ({"verify": {"max_size": 64}, "crossval": {"img_size": 96}}, "crossval",
     "verify.max_size (64) is below crossval.img_size (96)"),
    ({"verify": {"max_size": 64}, "retrain": {"img_size": 128}}, "retrain",
     "verify.max_size (64) is below retrain.img_size (128)"),
])
def test_stage_rejects_bad_params_before_any_work(tmp_path, change, stage_name, named):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merge(yaml.safe_load((ROOT / "params.yaml").read_text()),
                                                                change)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", f"stages.{stage_name}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_bearid_commands_report_bad_params_in_one_line(tmp_path, monkeypatch, capsys):
    from bearid import cli

    (tmp_path / "params.yaml").write_text("clean: {decisions: cleaning/decisions.csv}\n")
    (tmp_path / "candidates.csv").write_text("path\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["review", "--candidates", "candidates.csv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bearid review: error: ") and "params.yaml" in err and err.count("\n") == 1
