"""crossval.py: stratified seeded folds, and every train/valid image scored by a model that never saw it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import project_params
from PIL import Image

from bearid.atomic import write_csv
from bearid.crossval import FoldParams, assign_folds, crossval, fold_train, read_probs


def test_folds_are_stratified_and_seeded():
    labels = ["a"] * 9 + ["b"] * 6
    folds = assign_folds(labels, 3, seed=1)
    assert sorted(set(folds)) == [0, 1, 2]
    for k in range(3):
        held = [lab for lab, f in zip(labels, folds) if f == k]
        assert held.count("a") == 3 and held.count("b") == 2
    assert (assign_folds(labels, 3, seed=1) == folds).all()
    assert not (assign_folds(labels, 3, seed=2) == folds).all()


def test_folds_for_a_class_smaller_than_k_still_cover_every_fold():
    folds = assign_folds(["a"] * 6 + ["b"], 3, seed=0)
    assert sorted(set(folds)) == [0, 1, 2] and len(folds) == 7


def make_images(root: Path, n: int) -> list[dict]:
    """Two trivially separable classes (dark and bright squares), 16 px, with train/valid/test rows."""
    rng = np.random.default_rng(0)
    rows = []
    for label, level in (("dark", 40), ("bright", 215)):
        for i in range(n):
            path = Path("data/images") / label / f"{i:02d}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(level + rng.normal(0, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / path)
            rows.append({"path": path.as_posix(), "label": label, "split": ("test", "valid", "train", "train")[i % 4]})
    return rows


@pytest.mark.slow  # trains two fold models
def test_crossval_scores_every_train_and_valid_image_out_of_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # manifest paths are relative to the project root
    rows = make_images(tmp_path, 8)
    write_csv(tmp_path / "manifest.csv", rows, ["path", "label", "split"])
    train = fold_train(project_params("train", batch_size=4, device="cpu", seed=3), 16)
    metrics = crossval(tmp_path / "manifest.csv", FoldParams(folds=2, epochs=1, lr=1e-2, train=train),
                       tmp_path / "cv")
    df, probs, classes = read_probs(tmp_path / "cv" / "probs.csv")
    assert classes == ["bright", "dark"]
    assert df["path"].tolist() == [r["path"] for r in rows if r["split"] != "test"]
    assert set(df["split"]) == {"train", "valid"} and set(df["fold"]) == {0, 1}
    assert probs.shape == (12, 2) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (df["appearance"] > 0).all() and np.isfinite(df["appearance"]).all()
    assert [f["images"] for f in metrics["folds"]] == [6, 6]
    given = np.array([classes.index(label) for label in df["label"]])
    assert metrics["accuracy"] == pytest.approx(float((probs.argmax(1) == given).mean()))
    assert metrics["accuracy"] == pytest.approx(sum(f["accuracy"] * f["images"] for f in metrics["folds"]) / 12)
    assert json.loads((tmp_path / "cv" / "metrics.json").read_text()) == metrics


def test_one_class_is_an_error(tmp_path):
    write_csv(tmp_path / "manifest.csv", [{"path": "x.png", "label": "a", "split": "train"}] * 4,
              ["path", "label", "split"])
    with pytest.raises(ValueError, match="at least two classes"):
        crossval(tmp_path / "manifest.csv", FoldParams(2, 1, 1e-2, project_params("train")), tmp_path / "cv")


@pytest.mark.slow  # trains two fold models
def test_crossval_measures_an_image_unlike_the_rest_as_far_from_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = make_images(tmp_path, 8)
    odd = Path("data/images/dark/odd.png")  # a saturated colour pattern among grey squares
    stripes = np.zeros((16, 16, 3), np.uint8)
    stripes[::2, :, 0], stripes[1::2, :, 1] = 255, 200
    Image.fromarray(stripes).save(tmp_path / odd)
    rows.append({"path": odd.as_posix(), "label": "dark", "split": "train"})
    write_csv(tmp_path / "manifest.csv", rows, ["path", "label", "split"])
    train = fold_train(project_params("train", batch_size=4, device="cpu", seed=3), 16)
    crossval(tmp_path / "manifest.csv", FoldParams(folds=2, epochs=1, lr=1e-2, train=train), tmp_path / "cv")
    df, _, _ = read_probs(tmp_path / "cv" / "probs.csv")
    assert df.loc[df["appearance"].idxmax(), "path"] == odd.as_posix()


@pytest.mark.slow  # trains two fold models and embeds 12 images
def test_feature_probe_pools_a_second_held_out_opinion(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = make_images(tmp_path, 8)
    write_csv(tmp_path / "manifest.csv", rows, ["path", "label", "split"])
    train = fold_train(project_params("train", batch_size=4, device="cpu", seed=3), 16)
    p = FoldParams(folds=2, epochs=1, lr=1e-2, train=train, feature_probe=True)
    metrics = crossval(tmp_path / "manifest.csv", p, tmp_path / "cv")
    df, probs, classes = read_probs(tmp_path / "cv" / "probs.csv")
    given = np.array([classes.index(label) for label in df["label"]])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert metrics["probe_accuracy"] >= 11 / 12  # dark against bright squares: ImageNet features separate them
    assert 0 <= metrics["fold_model_accuracy"] <= 1
    assert metrics["accuracy"] == pytest.approx(float((probs.argmax(1) == given).mean()))


def test_feature_probe_without_the_weights_names_its_param_before_training(tmp_path, monkeypatch):
    from bearid import pretrained
    from bearid.params import ParamsError

    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "manifest.csv", make_images(tmp_path, 4), ["path", "label", "split"])
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    p = FoldParams(2, 1, 1e-2, fold_train(project_params("train", device="cpu"), 16), feature_probe=True)
    with pytest.raises(ParamsError, match=r"^crossval.feature_probe=true: .* or set crossval.feature_probe to false$"):
        crossval(tmp_path / "manifest.csv", p, tmp_path / "cv")
    assert not (tmp_path / "cv" / "probs.csv").exists()
