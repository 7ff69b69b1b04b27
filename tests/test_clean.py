"""clean.py: human decisions first, then the capped automatic policy on train/valid only."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bearid import clean
from bearid.atomic import read_csv, write_csv
from bearid.decisions import DecisionsError
from bearid.params import MinScore

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
         split: str = "train") -> dict:
    """A candidate row as interpret writes it: every value a string."""
    return {"path": f"img/{name}.jpg", "label": label, "suggested": suggested, "score": f"{score}",
            "ood_score": f"{ood}", "method": method, "reason": reason, "thumb": f"thumbs/{name}.jpg",
            "split": split}


LOOSE = MinScore(top_losses=1.0, confident_learning=0.5, out_of_place=0.8)


def test_human_decisions_are_applied():
    manifest = [row("a"), row("b"), row("c"), row("d", split="test"), row("e", "teddy")]
    decisions = {"img/a.jpg": {"action": "delete", "label": ""},
                 "img/b.jpg": {"action": "relabel", "label": "black"},
                 "img/c.jpg": {"action": "keep", "label": ""},
                 "img/d.jpg": {"action": "relabel", "label": "teddy"},  # a human may fix test labels
                 "img/e.jpg": {"action": "relabel", "label": "teddy"}}  # same label: nothing to do
    cleaned, report = clean.clean(manifest, [], decisions, LOOSE, max_fraction=0.5)
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
                  cand("2", method="top_losses", score=1.2), cand("3", method="top_losses", score=0.9),
                  cand("4", score=0.99, reason="")]  # not flagged: never touched
    cleaned, report = clean.clean(manifest, candidates, {}, LOOSE, max_fraction=1.0)
    assert [r["path"] for r in report] == ["img/0.jpg", "img/2.jpg"]
    assert all(r["decided_by"] == "policy" and r["action"] == "delete" for r in report)
    assert report[0]["reason"] == ("likely_mislabeled: confident_learning score 0.950 >= 0.5 "
                                   "(model suggests black)")
    assert "top_losses score 1.200 >= 1" in report[1]["reason"]
    assert len(cleaned) == 8


def test_policy_out_of_place_uses_its_own_threshold():
    manifest = [row(str(i)) for i in range(10)]
    candidates = [cand("0", reason=clean.OUT_OF_PLACE, score=0.1, ood=0.85),
                  cand("1", reason=clean.OUT_OF_PLACE, score=0.99, ood=0.79)]
    _, report = clean.clean(manifest, candidates, {}, LOOSE, max_fraction=1.0)
    assert [(r["path"], r["reason"]) for r in report] == [
        ("img/0.jpg", "likely_out_of_place: out-of-place score 0.850 >= 0.8")]


def test_policy_is_capped_per_class_in_review_order():
    manifest = ([row(f"g{i}") for i in range(20)] + [row(f"b{i}", "black") for i in range(10)]
                + [row(f"t{i}", split="test") for i in range(20)])
    candidates = [cand(f"g{i}") for i in range(8)] + [cand(f"b{i}", "black", "grizzly") for i in range(5)]
    _, report = clean.clean(manifest, candidates, {}, LOOSE, max_fraction=0.15)
    assert [r["path"] for r in report] == ["img/g0.jpg", "img/g1.jpg", "img/g2.jpg",  # int(0.15 * 20)
                                           "img/b0.jpg"]  # int(0.15 * 10)


def test_policy_never_touches_test_rows():
    manifest = [row("t", split="test"), row("v", split="valid")] + [row(str(i)) for i in range(8)]
    candidates = [cand("t", split="test"), cand("v", split="valid")]
    cleaned, report = clean.clean(manifest, candidates, {}, LOOSE, max_fraction=1.0)
    assert [r["path"] for r in report] == ["img/v.jpg"]
    assert row("t", split="test") in cleaned


def test_policy_skips_candidates_with_a_human_decision():
    manifest = [row(str(i)) for i in range(10)]
    decisions = {"img/0.jpg": {"action": "keep", "label": ""},
                 "img/1.jpg": {"action": "relabel", "label": "black"}}
    candidates = [cand("0"), cand("1"), cand("2")]
    cleaned, report = clean.clean(manifest, candidates, decisions, LOOSE, max_fraction=1.0)
    assert [(r["path"], r["decided_by"]) for r in report] == [("img/1.jpg", "human"), ("img/2.jpg", "policy")]
    assert row("0") in cleaned and row("1", "black") in cleaned


def test_decision_for_unknown_path_is_a_warning(capsys):
    manifest = [row("a"), row("b")]
    decisions = {"img/gone.jpg": {"action": "delete", "label": ""}}
    cleaned, report = clean.clean(manifest, [cand("gone")], decisions, LOOSE, max_fraction=1.0)
    assert cleaned == manifest and report == []
    assert "warning: decision for img/gone.jpg" in capsys.readouterr().out


def test_unknown_method_in_candidates_fails():
    with pytest.raises(ValueError, match="unknown ranking method 'magic'"):
        clean.clean([row("a")], [cand("a", method="magic")], {}, LOOSE, max_fraction=1.0)


def test_clean_files_writes_manifest_and_report(tmp_path):
    manifest = [row(str(i)) for i in range(10)] + [row("x", "black", "valid")]
    write_csv(tmp_path / "manifest.csv", manifest, ["path", "label", "split"])
    write_csv(tmp_path / "candidates.csv", [cand("3"), cand("x", "black", "grizzly", split="valid")],
              list(cand("3")))
    decisions = decisions_file(tmp_path, ["img/1.jpg,relabel,teddy"])
    report = clean.clean_files(tmp_path / "manifest.csv", tmp_path / "candidates.csv", decisions,
                               CLASSES, LOOSE, 0.2, tmp_path / "out")
    assert read_csv(tmp_path / "out" / "report.csv") == report and len(report) == 2  # black: int(0.2 * 1) = 0
    assert [(r["path"], r["decided_by"]) for r in report] == [("img/1.jpg", "human"), ("img/3.jpg", "policy")]
    cleaned = read_csv(tmp_path / "out" / "manifest.csv")
    assert [r["path"] for r in cleaned] == [r["path"] for r in manifest if r["path"] != "img/3.jpg"]
    assert {"path": "img/1.jpg", "label": "teddy", "split": "train"} in cleaned
    sheets = tmp_path / "out" / "sheets"  # what was dropped or relabelled, one contact sheet per reason
    assert sorted(p.name for p in sheets.iterdir()) == ["human_delete.png", "human_relabel.png",
                                                        "policy_mislabeled.png", "policy_out_of_place.png"]
    with Image.open(sheets / "human_relabel.png") as png:
        assert png.text["Title"].endswith(": 1 image")
