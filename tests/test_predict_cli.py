"""predict_cli.py: `bearid predict` on files and folders, text and JSON, with per-file errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers import MODEL_CLASSES

from bearid import cli
from bearid.predict import Predictor
from bearid.predict_cli import main

CLASSES = MODEL_CLASSES


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three images, one in a subfolder, plus a file that is not an image by its name."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.png"]):
        Image.fromarray(rng.integers(0, 256, (20 + 9 * i, 30, 3), dtype=np.uint8)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


def test_text_output_for_a_folder(model_dir, folder, capsys):
    assert main([str(folder), "--model", str(model_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(folder / n) for n in ["a.png", "b.jpg", "sub/c.png"]]
    probs = Predictor(model_dir).predict_files([folder / "a.png"])[0]
    label, p = lines[0].split("\t")[1].split()
    assert label == CLASSES[probs.argmax()] and float(p) == pytest.approx(probs.max(), abs=1e-4)


def test_json_top_k_through_the_bearid_command(model_dir, folder, capsys):
    files = [str(folder / "a.png"), str(folder / "sub/c.png")]
    assert cli.main(["predict", *files, "--model", str(model_dir), "--json", "--top-k", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == files
    probs = Predictor(model_dir).predict_files(files)
    for record, row in zip(records, probs):
        top = record["predictions"]
        assert [t["label"] for t in top] == [CLASSES[i] for i in np.argsort(-row)[:2]]
        np.testing.assert_allclose([t["probability"] for t in top], np.sort(row)[::-1][:2], atol=1e-5)


def test_bad_files_get_their_own_errors(model_dir, folder, tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<html></html>")
    good = folder / "a.png"
    truncated = tmp_path / "half.png"
    truncated.write_bytes(good.read_bytes()[:200])
    paths = [tmp_path / "missing.png", tmp_path / "empty.png", good, tmp_path / "page.jpg", truncated]
    assert main([*map(str, paths), "--model", str(model_dir), "--batch-size", "2"]) == 1
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(good)]
    errors = err.splitlines()
    assert len(errors) == 4 and all(": error: " in line for line in errors)
    for path, words in zip([paths[0], paths[1], paths[3], truncated],
                           ["No such file", "empty", "not an image", "truncated"]):
        assert any(line.startswith(str(path)) and words in line for line in errors), (path, errors)


def test_json_errors_keep_the_order(model_dir, folder, tmp_path, capsys):
    (tmp_path / "page.jpg").write_text("<html></html>")
    paths = [str(folder / "a.png"), str(tmp_path / "page.jpg"), str(folder / "b.jpg")]
    assert main([*paths, "--model", str(model_dir), "--json"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == paths
    assert "predictions" in records[0] and "not an image" in records[1]["error"] and "predictions" in records[2]


def test_missing_model_or_no_images(model_dir, tmp_path, capsys):
    assert main([str(tmp_path), "--model", str(tmp_path / "nowhere")]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert main([str(tmp_path), "--model", str(model_dir)]) == 1
    assert "no image files" in capsys.readouterr().err
