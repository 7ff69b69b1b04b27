"""clean.py: human decisions first, then the automatic policy, bounded by the evident faults, on train/valid only."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bearid import clean
from bearid.atomic import read_csv, write_csv
from bearid.decisions import DecisionsError
from bearid.noise import NoiseEstimate
from bearid.params import CleanParams, MinScore, ParamsError

CLASSES = ["grizzly", "black", "teddy"]


def decisions_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "decisions.csv"
    path.write_text("path,action,label\n" + "".join(line + "\n" for line in lines))
    return path


def test_missing_file_means_no_decisions(tmp_path):
    assert clean.read_decisions(tmp_path / "none.csv", CLASSES) == {}


def test_read_decisions(tmp_path):
    path = decisions_file(tmp_path, ["a.jpg,keep,", "b.jpg, delete ,", "c.jpg,relabel,teddy"])
    assert clean.read_decisions(path, CLASSES) == {
        "a.jpg": {"action": "keep", "label": ""},
        "b.jpg": {"action": "delete", "label": ""},
        "c.jpg": {"action": "relabel", "label": "teddy"},
    }


@pytest.mark.parametrize("bad, message", [
    ("b.jpg,remove,", "unknown action 'remove'"),
    ("b.jpg,relabel,panda", "relabel to unknown class 'panda'"),
    ("b.jpg,relabel,", "relabel to unknown class ''"),
    (",delete,", "empty path"),
])
def test_bad_line_is_named_by_file_and_line(tmp_path, bad, message):
    path = decisions_file(tmp_path, ["a.jpg,keep,", bad])
    with pytest.raises(DecisionsError) as e:
        clean.read_decisions(path, CLASSES)
    assert str(e.value).startswith(f"{path}:3: {message}")


def row(name: str, label: str = "grizzly", split: str = "train") -> dict:
    return {"path": f"img/{name}.jpg", "label": label, "split": split}


def cand(name: str, label: str = "grizzly", suggested: str = "black", score: float = 0.9,
         reason: str = clean.MISLABELED, method: str = "confident_learning", ood: float = 0.1,
         given_prob: float = 0.01, split: str = "train") -> dict:
    """A candidate row as interpret writes it: every value a string."""
    return {"path": f"img/{name}.jpg", "label": label, "suggested": suggested, "score": f"{score}",
            "ood_score": f"{ood}", "given_prob": f"{given_prob}", "method": method, "reason": reason,
            "thumb": f"thumbs/{name}.jpg", "split": split}


LOOSE = MinScore(top_losses=1.0, confident_learning=0.5, out_of_place=0.8)


def policy(max_removed: int | str = "estimate", beyond_estimate: bool = False) -> CleanParams:
    return CleanParams(decisions="cleaning/decisions.csv", min_score=LOOSE, max_removed=max_removed,
                       beyond_estimate=beyond_estimate)


POLICY = policy()


def noise(faults: int, threshold: float = 0.05) -> NoiseEstimate:
    return NoiseEstimate(threshold=threshold, images=100, below=faults + 2, expected=1.0, agreement=0.9,
                         min_agreement=0.7, faults=faults)


def test_human_decisions_are_applied():
    manifest = [row("a"), row("b"), row("c"), row("d", split="test"), row("e", "teddy")]
    decisions = {"img/a.jpg": {"action": "delete", "label": ""},
                 "img/b.jpg": {"action": "relabel", "label": "black"},
                 "img/c.jpg": {"action": "keep", "label": ""},
                 "img/d.jpg": {"action": "relabel", "label": "teddy"},  # a human may fix test labels
                 "img/e.jpg": {"action": "relabel", "label": "teddy"}}  # same label: nothing to do
    cleaned, report = clean.clean(manifest, [], decisions, POLICY, noise(5))
    assert cleaned == [row("b", "black"), row("c"), row("d", "teddy", "test"), row("e", "teddy")]
    assert [(r["path"], r["action"], r["new_label"], r["decided_by"]) for r in report] == [
        ("img/a.jpg", "delete", "", "human"),
        ("img/b.jpg", "relabel", "black", "human"),
        ("img/d.jpg", "relabel", "teddy", "human"),
    ]
    assert all(set(r) == set(clean.REPORT_FIELDS) for r in report)


def test_policy_threshold_per_method():
    manifest = [row(str(i)) for i in range(10)]
    candidates = [cand("0", score=0.95), cand("1", score=0.49),  # confident_learning at 0.5
                  cand("2", method="top_losses", score=1.2, given_prob=0.02),
                  cand("3", method="top_losses", score=0.9),
                  cand("4", score=0.99, reason="")]  # not flagged: never touched
    cleaned, report = clean.clean(manifest, candidates, {}, POLICY, noise(10))
    assert [r["path"] for r in report] == ["img/0.jpg", "img/2.jpg"]
    assert all(r["decided_by"] == "policy" and r["action"] == "delete" for r in report)
    assert report[0]["reason"] == ("likely_mislabeled: confident_learning score 0.950 >= 0.5 "
                                   "(model suggests black); p(label) 0.01")
    assert "top_losses score 1.200 >= 1" in report[1]["reason"]
    assert len(cleaned) == 8


def test_policy_out_of_place_uses_its_own_threshold():
    manifest = [row(str(i)) for i in range(10)]
    candidates = [cand("0", reason=clean.OUT_OF_PLACE, score=0.1, ood=0.85),
                  cand("1", reason=clean.OUT_OF_PLACE, score=0.99, ood=0.79)]
    _, report = clean.clean(manifest, candidates, {}, POLICY, noise(10))
    assert [(r["path"], r["reason"]) for r in report] == [
        ("img/0.jpg", "likely_out_of_place: out-of-place score 0.850 >= 0.8; p(label) 0.01")]


def test_policy_needs_the_out_of_sample_models_to_contradict_the_label():
    manifest = [row(str(i)) for i in range(10)]
    candidates = [cand("0", given_prob=0.2), cand("1", reason=clean.OUT_OF_PLACE, ood=0.95, given_prob=0.4),
                  cand("2", given_prob=0.05)]  # at the threshold: contradicted
    _, report = clean.clean(manifest, candidates, {}, POLICY, noise(10))
    assert [r["path"] for r in report] == ["img/2.jpg"]


def test_policy_drops_no_more_than_the_evident_faults_most_contradicted_first():
    manifest = [row(f"g{i}") for i in range(20)] + [row(f"t{i}", split="test") for i in range(5)]
    candidates = [cand(f"g{i}", given_prob=0.04 - 0.01 * (i % 4)) for i in range(8)]
    _, report = clean.clean(manifest, candidates, {}, POLICY, noise(3))
    assert [r["path"] for r in report] == ["img/g3.jpg", "img/g7.jpg", "img/g2.jpg"]  # p 0.01, 0.01, 0.02


def test_on_clean_data_the_policy_drops_nothing():
    manifest = [row(str(i)) for i in range(10)]
    candidates = [cand(str(i), score=0.99, given_prob=0.001) for i in range(5)]
    cleaned, report = clean.clean(manifest, candidates, {}, POLICY, noise(0))
    assert report == [] and cleaned == manifest


def test_decisions_use_up_the_evident_faults():
    manifest = [row(str(i)) for i in range(10)]
    decisions = {"img/0.jpg": {"action": "delete", "label": ""},
                 "img/1.jpg": {"action": "relabel", "label": "black"}}
    candidates = [cand(str(i)) for i in range(2, 8)]
    _, report = clean.clean(manifest, candidates, decisions, POLICY, noise(3))
    assert [(r["path"], r["decided_by"]) for r in report] == [
        ("img/0.jpg", "human"), ("img/1.jpg", "human"), ("img/2.jpg", "policy")]


def test_decisions_deleting_more_than_the_evident_faults_need_the_override():
    manifest = [row(str(i)) for i in range(10)]
    decisions = {f"img/{i}.jpg": {"action": "delete", "label": ""} for i in range(4)}
    with pytest.raises(ParamsError, match="the decisions delete 4 images, more than the 3 evident faults.*"
                                          "clean.beyond_estimate: true"):
        clean.clean(manifest, [], decisions, POLICY, noise(3))
    override = policy(beyond_estimate=True)
    cleaned, report = clean.clean(manifest, [cand("5")], decisions, override, noise(3))
    assert len(report) == 4 and len(cleaned) == 6  # the four deletions, and no policy drop: no faults left


def test_a_numeric_cap_beyond_the_evident_faults_needs_the_override():
    manifest = [row(str(i)) for i in range(10)]
    candidates = [cand(str(i)) for i in range(6)]
    with pytest.raises(ParamsError, match="clean.max_removed: 5 would let the policy drop 5 images, more than "
                                          "the 2 evident faults left"):
        clean.clean(manifest, candidates, {}, policy(5, False), noise(2))
    _, report = clean.clean(manifest, candidates, {}, policy(5, True), noise(2))
    assert len(report) == 5
    _, report = clean.clean(manifest, candidates, {}, policy(1, False), noise(2))
    assert len(report) == 1  # a tighter cap needs nothing


def test_policy_never_touches_test_rows():
    manifest = [row("t", split="test"), row("v", split="valid")] + [row(str(i)) for i in range(8)]
    candidates = [cand("t", split="test"), cand("v", split="valid")]
    cleaned, report = clean.clean(manifest, candidates, {}, POLICY, noise(5))
    assert [r["path"] for r in report] == ["img/v.jpg"]
    assert row("t", split="test") in cleaned


def test_policy_skips_candidates_with_a_human_decision():
    manifest = [row(str(i)) for i in range(10)]
    decisions = {"img/0.jpg": {"action": "keep", "label": ""},
                 "img/1.jpg": {"action": "relabel", "label": "black"}}
    candidates = [cand("0"), cand("1"), cand("2")]
    cleaned, report = clean.clean(manifest, candidates, decisions, POLICY, noise(5))
    assert [(r["path"], r["decided_by"]) for r in report] == [("img/1.jpg", "human"), ("img/2.jpg", "policy")]
    assert row("0") in cleaned and row("1", "black") in cleaned


def test_decision_for_unknown_path_is_a_warning(capsys):
    manifest = [row("a"), row("b")]
    decisions = {"img/gone.jpg": {"action": "delete", "label": ""}}
    cleaned, report = clean.clean(manifest, [cand("gone")], decisions, POLICY, noise(5))
    assert cleaned == manifest and report == []
    assert "warning: decision for img/gone.jpg" in capsys.readouterr().out


def test_unknown_method_in_candidates_fails():
    with pytest.raises(ValueError, match="unknown ranking method 'magic'"):
        clean.clean([row("a")], [cand("a", method="magic")], {}, POLICY, noise(5))


def test_clean_files_writes_manifest_and_report(tmp_path):
    manifest = [row(str(i)) for i in range(10)] + [row("x", "black", "valid")]
    write_csv(tmp_path / "manifest.csv", manifest, ["path", "label", "split"])
    write_csv(tmp_path / "candidates.csv", [cand("3"), cand("x", "black", "grizzly", given_prob=0.03,
                                                              split="valid")], list(cand("3")))
    (tmp_path / "noise.json").write_text('{"threshold": 0.05, "images": 11, "below": 3, "expected": 0.2, '
                                         '"agreement": 0.9, "min_agreement": 0.7, "faults": 2}')
    decisions = decisions_file(tmp_path, ["img/1.jpg,relabel,teddy"])
    p = CleanParams(decisions=str(decisions), min_score=LOOSE, max_removed="estimate", beyond_estimate=False)
    report = clean.clean_files(tmp_path / "manifest.csv", tmp_path / "candidates.csv", tmp_path / "noise.json",
                               CLASSES, p, tmp_path / "out")
    assert read_csv(tmp_path / "out" / "report.csv") == report and len(report) == 2  # 2 faults, 1 fixed by hand
    assert [(r["path"], r["decided_by"]) for r in report] == [("img/1.jpg", "human"), ("img/3.jpg", "policy")]
    cleaned = read_csv(tmp_path / "out" / "manifest.csv")
    assert [r["path"] for r in cleaned] == [r["path"] for r in manifest if r["path"] != "img/3.jpg"]
    assert {"path": "img/1.jpg", "label": "teddy", "split": "train"} in cleaned
    sheets = tmp_path / "out" / "sheets"  # what was dropped or relabelled, one contact sheet per reason
    assert sorted(p.name for p in sheets.iterdir()) == ["human_delete.png", "human_relabel.png",
                                                        "policy_mislabeled.png", "policy_out_of_place.png"]
    with Image.open(sheets / "human_relabel.png") as png:
        assert png.text["Title"].endswith(": 1 image")


def test_clean_files_without_the_noise_estimate_says_what_to_rerun(tmp_path):
    write_csv(tmp_path / "manifest.csv", [row("a")], ["path", "label", "split"])
    write_csv(tmp_path / "candidates.csv", [], list(cand("a")))
    p = CleanParams(decisions=str(tmp_path / "none.csv"), min_score=LOOSE, max_removed="estimate",
                    beyond_estimate=False)
    with pytest.raises(FileNotFoundError, match="noise.json is missing: rerun the interpret stage"):
        clean.clean_files(tmp_path / "manifest.csv", tmp_path / "candidates.csv", tmp_path / "noise.json",
                          CLASSES, p, tmp_path / "out")
