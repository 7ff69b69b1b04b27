"""evaluate.py: test-split scores and how well cleaning removed the injected faults (no model)."""

from __future__ import annotations

import math

import pytest

from bearid import evaluate
from bearid.atomic import write_csv
from bearid.demo import TRUTH_FIELDS

CLASSES = ["grizzly", "black", "teddy"]


def test_scores():
    labels = ["grizzly", "grizzly", "black", "black", "teddy"]
    predicted = ["grizzly", "black", "black", "black", "grizzly"]
    s = evaluate.scores(labels, predicted, CLASSES)
    assert s["accuracy"] == pytest.approx(0.6) and s["error_rate"] == pytest.approx(0.4)
    assert list(s["per_class"]) == CLASSES
    assert s["per_class"]["grizzly"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert s["per_class"]["black"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert s["per_class"]["teddy"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_scores_class_never_seen():
    s = evaluate.scores(["grizzly", "black"], ["grizzly", "black"], CLASSES)
    assert s["accuracy"] == 1.0 and s["error_rate"] == 0.0
    assert s["per_class"]["teddy"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def stem(i: int) -> str:
    return f"{i:016x}"


def truth_row(i: int, fault: str, true_class: str) -> dict:
    return {"url": f"file:web/{stem(i)}.png", "listed_class": "grizzly", "true_class": true_class,
            "fault": fault, "sha256": stem(i) + "0" * 48}


def mrow(i: int, label: str, split: str = "train") -> dict:
    return {"path": f"data/images/{label}/{stem(i)}.jpg", "label": label, "split": split}


def test_truth_by_stem(tmp_path):
    rows = [truth_row(1, "none", "grizzly"), truth_row(2, "missing", "") | {"sha256": ""}]
    write_csv(tmp_path / "gt.csv", rows, TRUTH_FIELDS)
    truth = evaluate.truth_by_stem(tmp_path / "gt.csv")
    assert list(truth) == [stem(1)] and truth[stem(1)]["true_class"] == "grizzly"


def test_cleaning_scores():
    truth = {stem(i): truth_row(i, fault, cls) for i, fault, cls in [
        (1, "mislabeled", "black"), (2, "mislabeled", "teddy"), (3, "mislabeled", "black"),
        (4, "out_of_place", ""), (5, "out_of_place", ""),
        (6, "none", "grizzly"), (7, "none", "grizzly"), (8, "duplicate", "grizzly"),
        (9, "mislabeled", "black"),  # in the test split: not counted
    ]}
    before = [mrow(i, "grizzly") for i in range(1, 9)] + [mrow(9, "grizzly", "test"), mrow(10, "grizzly")]
    after = [
        {**mrow(1, "grizzly"), "label": "black"},   # relabelled to its true class: fixed
        {**mrow(2, "grizzly"), "label": "black"},   # relabelled to a wrong class: not fixed
        # 3 removed: fixed
        mrow(4, "grizzly"),                          # out of place, kept
        # 5 removed
        # 6 removed: a good image lost
        mrow(7, "grizzly"),
        # 8 removed: a good (duplicate) image lost
        mrow(9, "grizzly", "test"), mrow(10, "grizzly"),
    ]
    s = evaluate.cleaning_scores(before, after, truth)
    assert s["mislabeled_in_data"] == 3 and s["mislabeled_removed"] == pytest.approx(2 / 3)
    assert s["out_of_place_in_data"] == 2 and s["out_of_place_removed"] == pytest.approx(1 / 2)
    assert s["faults_removed"] == pytest.approx(3 / 5)
    assert s["good_images"] == 3  # 6, 7 and 8: 10 has no truth, 9 is a test image
    assert s["good_images_removed"] == 2 and s["good_images_removed_share"] == pytest.approx(2 / 3)


def test_cleaning_scores_without_faults_is_nan():
    truth = {stem(1): truth_row(1, "none", "grizzly")}
    s = evaluate.cleaning_scores([mrow(1, "grizzly")], [mrow(1, "grizzly")], truth)
    assert s["mislabeled_in_data"] == 0 and math.isnan(s["mislabeled_removed"])
    assert math.isnan(s["faults_removed"]) and s["good_images_removed"] == 0
    assert s["good_images"] == 1 and s["good_images_removed_share"] == 0


def test_cleaning_scores_clean_world_share():
    """No fault injected: what the policy removes is all loss, counted against every good image."""
    truth = {stem(i): truth_row(i, "none" if i % 5 else "duplicate", "grizzly") for i in range(1, 11)}
    before = [mrow(i, "grizzly") for i in range(1, 11)] + [mrow(11, "grizzly", "test")]
    after = [mrow(i, "grizzly") for i in (2, 3, 4, 6, 7, 8, 9, 10)]  # 1 and the duplicate 5 dropped
    s = evaluate.cleaning_scores(before, after, truth)
    assert s["good_images"] == 10 and s["good_images_removed"] == 2
    assert s["good_images_removed_share"] == pytest.approx(0.2)
    assert math.isnan(s["faults_removed"]) and math.isnan(s["mislabeled_removed"])


def test_cleaning_scores_without_good_images_is_nan():
    truth = {stem(1): truth_row(1, "mislabeled", "black")}
    s = evaluate.cleaning_scores([mrow(1, "grizzly")], [], truth)
    assert s["good_images"] == 0 and math.isnan(s["good_images_removed_share"])


def rank_row(i: int, order: dict[str, int], reason: dict[str, str], ood: float) -> dict:
    row = {"path": f"data/images/grizzly/{stem(i)}.jpg", "label": "grizzly", "split": "train",
           "ood_in_sample": f"{ood}", "ood_out_of_sample": f"{ood}"}
    for name in ("top_losses_in_sample", "confident_learning_out_of_sample"):
        row[f"{name}_order"] = str(order[name])
        row[f"{name}_reason"] = reason.get(name, "")
    return row


def test_ranking_scores():
    truth = {stem(i): truth_row(i, fault, cls) for i, fault, cls in [
        (0, "mislabeled", "black"), (1, "mislabeled", "teddy"), (2, "out_of_place", ""),
        (3, "none", "grizzly"), (4, "none", "grizzly"), (5, "duplicate", "grizzly")]}
    tl, cl = "top_losses_in_sample", "confident_learning_out_of_sample"
    rows = [  # N = 3 faults; top_losses puts two clean images in its top 3, confident learning none
        rank_row(0, {tl: 0, cl: 1}, {tl: "likely_mislabeled", cl: "likely_mislabeled"}, 0.1),
        rank_row(1, {tl: 3, cl: 0}, {cl: "likely_mislabeled"}, 0.2),
        rank_row(2, {tl: 4, cl: 2}, {cl: "likely_out_of_place"}, 0.9),
        rank_row(3, {tl: 1, cl: 3}, {tl: "likely_mislabeled"}, 0.3),
        rank_row(4, {tl: 2, cl: 4}, {}, 0.0),
        rank_row(5, {tl: 5, cl: 5}, {}, 0.0),
    ]
    s = evaluate.ranking_scores(rows, truth)
    assert (s["n_mislabeled"], s["n_out_of_place"]) == (2, 1)
    assert s[tl]["precision_at_n"] == pytest.approx(1 / 3)
    assert s[tl]["mislabeled_precision_at_n_mislabeled"] == pytest.approx(1 / 2)
    assert s[cl]["mislabeled_precision_at_n_mislabeled"] == 1
    assert s[tl]["mislabeled_recall_at_n"] == pytest.approx(1 / 2) and s[tl]["out_of_place_recall_at_n"] == 0
    assert s[tl]["flagged"] == 2 and s[tl]["flagged_precision"] == pytest.approx(1 / 2)
    assert s[cl]["precision_at_n"] == 1 and s[cl]["mislabeled_recall_at_n"] == 1
    assert s[cl]["flagged_out_of_place_recall"] == 1 and s[cl]["ood_flagged_out_of_place_recall"] == 1
    assert s[cl]["ood_recall_at_n_out_of_place"] == 1
    assert s["n_good"] == 3
    assert s[cl]["good_flagged_out_of_place"] == 0 and s[cl]["good_flagged_out_of_place_share"] == 0
    assert s[tl]["good_flagged_out_of_place"] == 0
    assert evaluate.ranking_scores([], truth) == {}


def test_ranking_scores_count_good_images_flagged_out_of_place():
    """The out-of-place score's false flags: good images (duplicates too) set aside as out of place."""
    truth = {stem(i): truth_row(i, fault, cls) for i, fault, cls in [
        (0, "out_of_place", ""), (1, "mislabeled", "black"), (2, "none", "grizzly"), (3, "none", "grizzly"),
        (4, "duplicate", "grizzly"), (5, "none", "grizzly")]}
    tl, cl = "top_losses_in_sample", "confident_learning_out_of_sample"
    oop, mis = "likely_out_of_place", "likely_mislabeled"
    rows = [
        rank_row(0, {tl: 0, cl: 0}, {tl: oop, cl: oop}, 0.9),
        rank_row(1, {tl: 3, cl: 3}, {tl: mis}, 0.1),
        rank_row(2, {tl: 1, cl: 1}, {tl: oop, cl: oop}, 0.85),   # a good image flagged: a false flag
        rank_row(3, {tl: 4, cl: 4}, {cl: mis}, 0.2),              # flagged mislabeled: not counted here
        rank_row(4, {tl: 2, cl: 2}, {tl: oop}, 0.82),             # a good duplicate, flagged by one
        rank_row(5, {tl: 5, cl: 5}, {}, 0.0),
    ]
    s = evaluate.ranking_scores(rows, truth)
    assert s["n_good"] == 4
    assert s[tl]["good_flagged_out_of_place"] == 2 and s[tl]["good_flagged_out_of_place_share"] == pytest.approx(1 / 2)
    assert s[cl]["good_flagged_out_of_place"] == 1 and s[cl]["good_flagged_out_of_place_share"] == pytest.approx(1 / 4)
    assert s[tl]["ood_flagged_out_of_place_recall"] == 1
