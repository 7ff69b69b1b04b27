"""interpret.py: ranking methods on known probabilities, and the outputs of a whole run (untrained model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import project_params
from PIL import Image

from bearid import interpret
from bearid.atomic import read_csv, write_csv
from bearid.crossval import APPEARANCE, PROB_PREFIX
from bearid.interpret import MISLABELED, OUT_OF_PLACE

PNG = b"\x89PNG\r\n\x1a\n"


def noisy_probs(n: int = 60, k: int = 3, flips: tuple[int, ...] = (0, 7, 20), seed: int = 0):
    """Confident, correct probabilities for true labels; the given labels of `flips` are wrong."""
    rng = np.random.default_rng(seed)
    true = np.arange(n) % k
    probs = rng.dirichlet(np.full(k, 0.3), n) * 0.1
    probs[np.arange(n), true] += 0.9
    given = true.copy()
    given[list(flips)] = (true[list(flips)] + 1) % k
    return probs / probs.sum(1, keepdims=True), given


def test_top_losses_is_cross_entropy_on_the_given_label():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    score, flagged = interpret.mislabel_scores(probs, np.array([0, 0]), "top_losses")
    assert score == pytest.approx([-np.log(0.7), -np.log(0.1)])
    assert flagged.tolist() == [False, True]


@pytest.mark.parametrize("method", ["top_losses", "confident_learning"])
def test_flipped_labels_rank_first(method):
    probs, given = noisy_probs()
    score, flagged = interpret.mislabel_scores(probs, given, method)
    assert set(np.argsort(-score)[:3]) == {0, 7, 20}
    assert set(np.flatnonzero(flagged)) == {0, 7, 20}


def test_confident_learning_filter_by_is_passed_on():
    probs, given = noisy_probs()
    _, flagged = interpret.mislabel_scores(probs, given, "confident_learning", filter_by="predicted_neq_given")
    assert set(np.flatnonzero(flagged)) == {0, 7, 20}
    with pytest.raises(ValueError, match="unknown ranking method"):
        interpret.mislabel_scores(probs, given, "magic")


def test_appearance_out_of_place_score_comes_from_the_distance_ratio():
    probs, given = noisy_probs()
    ratio = np.ones(len(given))
    ratio[[3, 9]] = [5.0, 2.0]
    ood = interpret.out_of_place_scores(probs, given, "appearance", ratio)
    assert ood[3] == pytest.approx(0.8) and ood[9] == pytest.approx(0.5) and (np.delete(ood, [3, 9]) == 0).all()
    with pytest.raises(ValueError, match="appearance column"):
        interpret.out_of_place_scores(probs, given, "appearance")
    with pytest.raises(ValueError, match="unknown out-of-place method"):
        interpret.out_of_place_scores(probs, given, "vibes")


def test_embedding_out_of_place_score_is_the_given_scores():
    probs, given = noisy_probs()
    scores = np.linspace(0, 1, len(given))
    assert (interpret.out_of_place_scores(probs, given, "embedding", embedding=scores) == scores).all()
    with pytest.raises(ValueError, match="embedding scores"):
        interpret.out_of_place_scores(probs, given, "embedding", np.ones(len(given)))


@pytest.mark.parametrize("method", ["entropy", "least_confidence", "cleanlab"])
def test_out_of_place_score_is_highest_for_a_flat_distribution(method):
    probs, given = noisy_probs()
    probs[5] = [1 / 3, 1 / 3, 1 / 3]
    ood = interpret.out_of_place_scores(probs, given, method)
    assert ood.argmax() == 5 and ((0 <= ood) & (ood <= 1 + 1e-9)).all()
    if method != "cleanlab":
        assert ood[5] == pytest.approx(1.0)


def test_rank_orders_out_of_place_then_mislabeled_then_the_rest():
    probs, given = noisy_probs()
    probs[5] = [0.34, 0.33, 0.33]  # its label (2) is not the top class, and it looks like no class
    p = project_params("interpret", **{"method": "top_losses", "ood_threshold": 0.9, "ood_method": "entropy"})
    r = interpret.rank(probs, given, p)
    assert r.loc[5, "reason"] == OUT_OF_PLACE and r.loc[5, "order"] == 0
    assert {i for i in (0, 7, 20)} <= set(np.flatnonzero(r["reason"] == MISLABELED))
    flagged = set(np.flatnonzero(r["reason"] != ""))
    assert set(r.loc[sorted(flagged), "order"]) == set(range(len(flagged)))  # flagged come first
    mislabeled = r[r["reason"] == MISLABELED].sort_values("order")
    assert mislabeled["score"].is_monotonic_decreasing
    assert r.loc[0, "suggested"] == 0 and sorted(r["order"]) == list(range(60))


def test_rank_puts_the_most_out_of_place_first_whatever_its_mislabel_score():
    probs, given = noisy_probs()
    ratio = np.ones(len(given))
    ratio[[4, 11]] = [10.0, 40.0]  # confidently classified, yet unlike every other image
    r = interpret.rank(probs, given, project_params("interpret", **{"method": "confident_learning"}), ratio)
    assert r.sort_values("order").index[:2].tolist() == [11, 4]
    assert (r.loc[[4, 11], "reason"] == OUT_OF_PLACE).all()


def test_suggest_takes_the_runner_up_when_the_top_class_is_the_given_one():
    probs = np.array([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]])
    assert interpret.suggest(probs, np.array([0, 0]), np.array([True, False])).tolist() == [1, 0]


def test_per_class_rows():
    rows = interpret.per_class_rows(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert rows == [{"class": "a", "precision": "1.0000", "recall": "0.5000", "f1": "0.6667", "support": 2},
                    {"class": "b", "precision": "0.5000", "recall": "1.0000", "f1": "0.6667", "support": 1}]


ODD_ONE = 2  # the train/valid row whose appearance ratio marks it out of place


def make_project(root: Path) -> pd.DataFrame:
    """16-px images of two classes, a manifest, and random out-of-sample probabilities for them."""
    rng = np.random.default_rng(0)
    rows = []
    for label, level in (("dark", 40), ("bright", 215)):
        for i in range(6):
            path = Path("data/images") / label / f"{label}{i}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), level + i, np.uint8)).save(root / path)
            rows.append({"path": path.as_posix(), "label": label, "split": ("train", "valid", "test")[i % 3]})
    manifest = pd.DataFrame(rows)
    manifest.to_csv(root / "manifest.csv", index=False)
    tv = manifest[manifest["split"] != "test"]
    p = rng.dirichlet([1, 1], len(tv))
    appearance = [50.0 if i == ODD_ONE else 1.0 for i in range(len(tv))]  # one image looks unlike the rest
    write_csv(root / "probs.csv", [{**r, "fold": 0, APPEARANCE: look, PROB_PREFIX + "bright": f"{a:.6g}",
                                    PROB_PREFIX + "dark": f"{b:.6g}"}
                                   for r, (a, b), look in zip(tv.to_dict("records"), p, appearance)],
              ["path", "label", "split", "fold", APPEARANCE, PROB_PREFIX + "bright", PROB_PREFIX + "dark"])
    return manifest


def test_interpret_writes_every_output(tmp_path, monkeypatch):
    from bearid.export import save_model
    from bearid.learner import NORMALIZE, build_learner, dataloaders

    monkeypatch.chdir(tmp_path)
    manifest = make_project(tmp_path)
    train = project_params("train", img_size=16, batch_size=4, device="cpu", augment=False)
    learn = build_learner(dataloaders(manifest, train), train, tmp_path)
    save_model(learn.model, ["bright", "dark"], train, NORMALIZE, tmp_path / "model")
    p = project_params("interpret", **{"top_k": 4, "batch_size": 8})
    result = interpret.interpret(tmp_path / "model", tmp_path / "manifest.csv", tmp_path / "probs.csv",
                                 Path("out"), p)
    out = tmp_path / "out"
    candidates = read_csv(out / "candidates.csv")
    assert list(candidates[0]) == interpret.CANDIDATE_FIELDS and result["n_ranked"] == 8 == len(candidates)
    assert {c["path"] for c in candidates} == set(manifest[manifest["split"] != "test"]["path"])
    assert {c["method"] for c in candidates} == {"confident_learning"}
    assert {c["reason"] for c in candidates} <= {"", MISLABELED, OUT_OF_PLACE}
    flagged = [c["reason"] != "" for c in candidates]
    assert flagged == sorted(flagged, reverse=True)
    odd = manifest[manifest["split"] != "test"]["path"].iloc[ODD_ONE]
    assert (candidates[0]["path"], candidates[0]["reason"]) == (odd, OUT_OF_PLACE)
    assert float(candidates[0]["ood_score"]) == pytest.approx(0.98)
    assert [c["reason"] for c in candidates[1:]].count(OUT_OF_PLACE) == 0
    assert all((tmp_path / c["thumb"]).read_bytes()[:2] == b"\xff\xd8" for c in candidates)
    rankings = read_csv(out / "rankings.csv")
    assert {f"{m}_{s}_order" for m in interpret.METHODS for s in interpret.SOURCES} <= set(rankings[0])
    for png in ("confusion.png", "top_losses.png"):
        assert (out / png).read_bytes()[:8] == PNG
    assert [r["class"] for r in read_csv(out / "per_class.csv")] == ["bright", "dark"]
    assert len(read_csv(out / "confusion.csv")) == 4  # the valid images
    assert (out / "most_confused.csv").is_file()


def test_interpret_with_embedding_scores_ranks_by_them(tmp_path, monkeypatch):
    from bearid.export import save_model
    from bearid.learner import NORMALIZE, build_learner, dataloaders

    monkeypatch.chdir(tmp_path)
    manifest = make_project(tmp_path)
    tv = manifest[manifest["split"] != "test"]
    odd = tv["path"].iloc[ODD_ONE + 1]  # not the image the appearance ratio marks

    def scores(paths, labels, size, k, batch_size):
        assert (list(paths), list(labels), size, k) == (tv["path"].tolist(), tv["label"].tolist(), 32, 2)
        return np.array([0.9 if path == odd else 0.1 for path in paths]), 0.5

    monkeypatch.setattr(interpret, "embedding_scores", scores)
    train = project_params("train", img_size=16, batch_size=4, device="cpu", augment=False)
    save_model(build_learner(dataloaders(manifest, train), train, tmp_path).model, ["bright", "dark"], train,
               NORMALIZE, tmp_path / "model")
    p = project_params("interpret", **{"top_k": 4, "batch_size": 8, "ood_method": "embedding", "embed_size": 32,
                                       "knn_k": 2})
    interpret.interpret(tmp_path / "model", tmp_path / "manifest.csv", tmp_path / "probs.csv", Path("out"), p)
    candidates = read_csv(tmp_path / "out" / "candidates.csv")
    assert [(c["path"], c["reason"]) for c in candidates if c["reason"] == OUT_OF_PLACE] == [(odd, OUT_OF_PLACE)]
    assert float(candidates[0]["ood_score"]) == pytest.approx(0.9)
    rankings = read_csv(tmp_path / "out" / "rankings.csv")
    assert {float(r["ood_out_of_sample"]) for r in rankings} == {0.1, 0.9}


def test_interpret_without_the_weights_package_stops_first_naming_the_method(tmp_path, monkeypatch):
    from bearid import pretrained
    from bearid.params import ParamsError

    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ParamsError, match=r"^interpret.ood_method=embedding: .* or set interpret.ood_method to "
                                          r"appearance$"):
        interpret.interpret(tmp_path / "no-model", tmp_path / "manifest.csv", tmp_path / "probs.csv",
                            Path("out"), project_params("interpret", ood_method="embedding"))
    assert not (tmp_path / "out" / "candidates.csv").exists()


def test_interpret_refuses_probabilities_for_other_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    rows = read_csv(tmp_path / "probs.csv")[1:]
    write_csv(tmp_path / "probs.csv", rows, list(rows[0]))
    with pytest.raises(ValueError, match="rerun the crossval stage"):
        interpret.interpret(tmp_path / "no-model", tmp_path / "manifest.csv", tmp_path / "probs.csv",
                            Path("out"), project_params("interpret", **{}))
