"""The lesson's SGD demo: it fits, names the failure modes, and writes its outputs atomically."""

from __future__ import annotations

import csv
import json
import math

import pytest
from PIL import Image

from bearid import cli, diagnosis, sgd


def strict_json(path) -> dict:
    def refuse(name):
        raise ValueError(f"{path} holds {name}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def demo(tmp_path, *flags: str) -> dict:
    assert sgd.main(["--out", str(tmp_path), *flags]) == 0
    result = strict_json(tmp_path / "result.json")
    assert result["diagnosis"]["verdict"] in diagnosis.ADVICE  # the pipeline's vocabulary
    return result


def test_default_run_recovers_the_true_coefficients(tmp_path):
    result = demo(tmp_path)
    assert result["coef_error"] < 0.1
    assert all(abs(a - t) < 0.1 for a, t in zip(result["coef"], [3.0, 2.0]))
    assert result["diagnosis"]["verdict"] == "ok"
    assert result["steps"] == 100 and not result["stopped_early"]
    # it went where least squares says, not just near the truth by luck
    assert all(abs(a - b) < 0.01 for a, b in zip(result["coef"], result["least_squares_coef"]))
    rows = list(csv.DictReader((tmp_path / "loss.csv").open()))
    assert len(rows) == 101 and float(rows[-1]["loss"]) < float(rows[0]["loss"]) / 50
    assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")


def test_high_lr_is_reported_as_lr_too_high_without_nan(tmp_path):
    result = demo(tmp_path, "--lr", "5")
    assert result["diagnosis"]["verdict"] == "lr_too_high"
    assert result["stopped_early"] and result["steps"] < 100


def test_overflowing_lr_is_reported_with_nulls_not_nan(tmp_path):
    result = demo(tmp_path, "--lr", "1e30")  # the loss overflows float32 on the first step
    assert result["diagnosis"]["verdict"] == "lr_too_high"
    assert result["final_loss"] is None and result["diagnosis"]["evidence"]["final_loss"] is None
    assert Image.open(tmp_path / "fit.gif").n_frames == 2


def test_tiny_lr_is_lr_too_low(tmp_path):
    assert demo(tmp_path, "--lr", "1e-4", "--frame-every", "50")["diagnosis"]["verdict"] == "lr_too_low"


def test_few_epochs_is_too_few_epochs(tmp_path):
    assert demo(tmp_path, "--epochs", "3")["diagnosis"]["verdict"] == "too_few_epochs"


def test_sgd_on_mini_batches_converges(tmp_path):
    result = demo(tmp_path, "--batch-size", "10", "--epochs", "20", "--frame-every", "50")
    assert result["steps"] == 200  # 10 mini-batches an epoch
    assert result["coef_error"] < 0.1
    assert result["diagnosis"]["verdict"] in ("ok", "too_few_epochs")


@pytest.mark.parametrize("epochs,every,frames", [(100, 7, 16), (10, 1, 11), (10, 20, 2)])
def test_gif_has_one_frame_every_few_steps_plus_the_last(tmp_path, epochs, every, frames):
    result = demo(tmp_path, "--epochs", str(epochs), "--frame-every", str(every))
    assert result["frames"] == frames  # steps 0, every, 2*every, ..., and the last
    assert Image.open(tmp_path / "fit.gif").n_frames == frames


def test_outputs_leave_no_temp_files(tmp_path):
    demo(tmp_path, "--epochs", "5")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(sgd.FILES.values())


@pytest.fixture
def gif_save_fails(monkeypatch):
    """Pillow writes half a GIF, then the disk fills up."""
    real_save = Image.Image.save

    def half_then_fail(self, fp, format=None, **kw):
        if format != "GIF":
            return real_save(self, fp, format, **kw)
        fp.write(b"GIF89a half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)


def test_a_failed_gif_write_leaves_no_partial_file(tmp_path, gif_save_fails):
    with pytest.raises(OSError, match="disk full"):
        sgd.main(["--out", str(tmp_path), "--epochs", "5"])
    # no fit.gif, no temp file, and no result.json: it is written last
    assert {p.name for p in tmp_path.iterdir()} == {"loss.csv", "loss.png"}


def test_a_failed_rewrite_keeps_the_old_outputs(tmp_path, request):
    demo(tmp_path, "--epochs", "5")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    request.getfixturevalue("gif_save_fails")
    with pytest.raises(OSError, match="disk full"):
        sgd.main(["--out", str(tmp_path), "--epochs", "9"])
    assert (tmp_path / "fit.gif").read_bytes() == before["fit.gif"]
    assert (tmp_path / "result.json").read_bytes() == before["result.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)


def test_cli_runs_the_demo(tmp_path, capsys):
    assert cli.main(["sgd-demo", "--out", str(tmp_path), "--epochs", "50", "--frame-every", "25", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == strict_json(tmp_path / "result.json")
    assert printed["config"]["epochs"] == 50
    assert all((tmp_path / name).stat().st_size > 0 for name in sgd.FILES.values())


@pytest.mark.parametrize("flag,value", [("--lr", "0"), ("--lr", "nan"), ("--epochs", "0"), ("--epochs", "x"),
                                        ("--batch-size", "-1"), ("--frame-every", "0"), ("--n", "1"),
                                        ("--noise", "-0.1"), ("--coef", "inf")])
def test_a_bad_flag_is_an_argparse_error_naming_it(tmp_path, capsys, flag, value):
    args = ["sgd-demo", "--out", str(tmp_path), flag, value] + (["2"] if flag == "--coef" else [])
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and value in err
    assert not any(tmp_path.iterdir())


def test_an_unknown_flag_is_named(capsys):
    assert cli.main(["sgd-demo", "--learning-rate", "1"]) == 2
    assert "--learning-rate" in capsys.readouterr().err


def test_diagnose_needs_a_step():
    with pytest.raises(ValueError):
        sgd.diagnose([1.0])
    assert sgd.diagnose([1.0, math.inf])["verdict"] == "lr_too_high"
