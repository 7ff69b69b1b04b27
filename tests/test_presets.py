"""presets.py: `bearid preset real-photos` rewrites params.yaml into a valid real-photo set-up."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from bearid import params, presets
from bearid.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def test_real_photos_preset_sets_source_classes_sizes_and_the_pretrained_body(params_file, capsys):
    assert cli(["preset", "real-photos", "--params", str(params_file)]) == 0
    fetch, verify = params.load("fetch", params_file), params.load("verify", params_file)
    train, crossval = params.load("train", params_file), params.load("crossval", params_file)
    assert (fetch.source, fetch.classes, fetch.query) == ("ddg", ["grizzly", "black", "teddy"], "{cls} bear")
    assert verify.max_size == train.img_size == crossval.img_size == 128
    assert (train.arch, train.pretrained, train.schedule) == ("efficientnet_lite0", True, "fine_tune")
    assert (train.freeze_epochs, train.epochs) == (2, 4) and train.aug["do_flip"] is True
    assert params.load("download", params_file).file_dir == ""
    for section in params.SECTIONS:  # every section still loads, untouched keys kept
        params.load(section, params_file)
    interpret = params.load("interpret", params_file)
    assert (interpret.ood_method, interpret.ood_threshold) == ("embedding", 0.7)  # content, not colour
    assert dataclasses.replace(interpret, ood_method="appearance", ood_threshold=0.8) == params.load(
        "interpret", ROOT / "params.yaml")
    assert crossval.feature_probe is True  # a probe on the pretrained features steadies the fold models
    assert params_file.read_text().startswith("# Every key's meaning")  # comments kept
    assert "wrote" in capsys.readouterr().out


def test_files_source(params_file):
    assert cli(["preset", "real-photos", "--source", "files", "--params", str(params_file)]) == 0
    assert params.load("fetch", params_file).source == "files"


def test_an_invalid_result_is_not_written(params_file, capsys):
    params_file.write_text(params_file.read_text() + "trian: {lr: 1}\n")
    before = params_file.read_text()
    assert cli(["preset", "real-photos", "--params", str(params_file)]) == 2
    assert "unknown sections ['trian']" in capsys.readouterr().err
    assert params_file.read_text() == before
    assert [p.name for p in params_file.parent.iterdir()] == ["params.yaml"]


def test_unknown_preset_is_refused():
    with pytest.raises(params.ParamsError, match="unknown preset 'cats'"):
        presets.apply("cats", ROOT / "params.yaml")
