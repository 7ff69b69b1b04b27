"""demo.py: the offline web holds exactly the faults its parameters ask for, reproducibly."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse


from bearid import demo
from bearid.params import DemoParams

CLASSES = ["three", "five", "eight"]
P = DemoParams(img_size=16, per_class=12, mislabeled=0.08, out_of_place=0.03,
               corrupt_per_kind=2, duplicates=3, seed=0)


def build(tmp_path: Path, monkeypatch, p: DemoParams = P) -> tuple[dict, list[dict]]:
    """Build the web as the stage does: from the project root, with a relative web_dir."""
    monkeypatch.chdir(tmp_path)
    urls = demo.build_web(CLASSES, p, Path("web"))
    return urls, demo.read_ground_truth(Path("web"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_fault_counts_match_parameters(tmp_path, monkeypatch):
    _, truth = build(tmp_path, monkeypatch)
    n = P.per_class * len(CLASSES)
    counts = Counter(row["fault"] for row in truth)
    assert counts == {
        "none": n - round(P.mislabeled * n),
        "mislabeled": round(P.mislabeled * n),
        "out_of_place": round(P.out_of_place * n),
        "duplicate": P.duplicates,
        **{kind: P.corrupt_per_kind for kind in demo.CORRUPT_KINDS},
    }


def test_truth_rows_are_consistent(tmp_path, monkeypatch):
    urls, truth = build(tmp_path, monkeypatch)
    for row in truth:
        fault = row["fault"]
        assert row["listed_class"] in CLASSES
        if fault == "mislabeled":
            assert row["true_class"] in CLASSES and row["true_class"] != row["listed_class"]
        elif fault in ("none", "duplicate"):
            assert row["true_class"] == row["listed_class"]
        else:
            assert row["true_class"] == ""
    # every URL is listed under its listed class, once
    assert sorted(u for lst in urls.values() for u in lst) == sorted(r["url"] for r in truth)
    for row in truth:
        assert row["url"] in urls[row["listed_class"]]


def test_per_class_caps_each_class(tmp_path, monkeypatch):
    _, truth = build(tmp_path, monkeypatch)
    true_counts = Counter(r["true_class"] for r in truth if r["fault"] in ("none", "mislabeled"))
    assert true_counts == {c: P.per_class for c in CLASSES}


def test_duplicates_repeat_a_clean_image(tmp_path, monkeypatch):
    _, truth = build(tmp_path, monkeypatch)
    clean = {r["sha256"]: r for r in truth if r["fault"] == "none"}
    for row in (r for r in truth if r["fault"] == "duplicate"):
        original = clean[row["sha256"]]
        assert original["url"] != row["url"]
        assert original["listed_class"] == row["listed_class"]


def test_urls_are_relative_file_urls_that_exist(tmp_path, monkeypatch):
    _, truth = build(tmp_path, monkeypatch)
    for row in truth:
        parts = urlparse(row["url"])
        assert parts.scheme == "file" and not parts.netloc
        path = Path(parts.path)
        assert not path.is_absolute() and path.parts[0] == "web"
        if row["fault"] == "missing":
            assert not path.exists() and row["sha256"] == ""
        else:
            assert path.is_file()
            assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]


def test_file_kinds(tmp_path, monkeypatch):
    _, truth = build(tmp_path, monkeypatch)
    for row in truth:
        path = Path(urlparse(row["url"]).path)
        if row["fault"] in ("none", "mislabeled", "out_of_place", "duplicate"):
            assert path.read_bytes().startswith(b"\x89PNG")
        elif row["fault"] == "empty":
            assert path.stat().st_size == 0
        elif row["fault"] == "html":
            assert path.read_bytes().startswith(b"<!DOCTYPE html>")
        elif row["fault"] == "truncated":
            assert path.read_bytes().startswith(b"\x89PNG") and b"IEND" not in path.read_bytes()


def test_same_seed_same_bytes_other_seed_differs(tmp_path, monkeypatch):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        (tmp_path / name).mkdir()
        build(tmp_path / name, monkeypatch, dataclasses.replace(P, seed=seed))
    a, b, c = (snapshot(tmp_path / x / "web") for x in "abc")
    assert a == b
    assert a != c
    assert a[demo.GROUND_TRUTH] != c[demo.GROUND_TRUTH]


def test_all_images_when_per_class_is_zero(tmp_path, monkeypatch):
    p = DemoParams(img_size=8, per_class=0, mislabeled=0, out_of_place=0, corrupt_per_kind=0,
                   duplicates=0, seed=0)
    _, truth = build(tmp_path, monkeypatch, p)
    counts = Counter(r["true_class"] for r in truth)
    assert set(counts) == set(CLASSES) and min(counts.values()) > 150  # sklearn has ~180 per digit
    assert {r["fault"] for r in truth} == {"none"}
