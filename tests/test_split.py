"""split.py: a seeded hash of each image's name decides its split."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from bearid import split
from bearid.atomic import read_csv, write_csv


def names(n: int, start: int = 0) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(start, start + n)]


def add_images(image_dir: Path, cls: str, stems: list[str]) -> None:
    (image_dir / cls).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        (image_dir / cls / f"{stem}.jpg").touch()


def manifest(tmp_path: Path, classes=("a", "b"), seed: int = 42, out: str = "m.csv") -> list[dict]:
    return split.make_manifest(tmp_path / "images", list(classes), 0.2, 0.15, seed, tmp_path / out)


def test_unit_hash_is_fixed_and_in_range():
    values = [split.unit_hash(n, 42) for n in names(200)]
    assert values == [split.unit_hash(n, 42) for n in names(200)]
    assert all(0 <= v < 1 for v in values)


def test_manifest_is_deterministic_and_written(tmp_path):
    for cls in "ab":
        add_images(tmp_path / "images", cls, names(60, start=100 * (cls == "b")))
    (tmp_path / "images" / "a" / "notes.txt").touch()  # only .jpg files count
    first = manifest(tmp_path, out="1.csv")
    second = manifest(tmp_path, out="2.csv")
    assert first == second
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert read_csv(tmp_path / "1.csv") == first
    assert len(first) == 120 and {r["label"] for r in first} == {"a", "b"}
    assert all(r["path"].endswith(".jpg") and f"/{r['label']}/" in r["path"] for r in first)
    assert [r["path"] for r in first] == sorted(r["path"] for r in first)


def test_adding_images_keeps_existing_assignments(tmp_path):
    for cls in "ab":
        add_images(tmp_path / "images", cls, names(50, start=1000 * (cls == "b")))
    before = {r["path"]: r["split"] for r in manifest(tmp_path)}
    add_images(tmp_path / "images", "a", names(40, start=500))
    after = {r["path"]: r["split"] for r in manifest(tmp_path)}
    assert len(after) == len(before) + 40
    assert {p: after[p] for p in before} == before


def test_shares_match_percentages():
    counts = Counter(split.assign(n, 0.2, 0.15, 42) for n in names(2000))
    assert abs(counts["valid"] / 2000 - 0.2) < 0.03
    assert abs(counts["test"] / 2000 - 0.15) < 0.03
    assert counts["train"] + counts["valid"] + counts["test"] == 2000


def test_zero_test_pct_gives_no_test_images():
    assert "test" not in {split.assign(n, 0.2, 0.0, 42) for n in names(500)}


def test_seed_changes_assignment():
    stems = names(300)
    a = [split.assign(n, 0.2, 0.15, 1) for n in stems]
    b = [split.assign(n, 0.2, 0.15, 2) for n in stems]
    assert a != b
    assert sum(x != y for x, y in zip(a, b)) > 50


def test_class_without_valid_images_is_an_error(tmp_path):
    add_images(tmp_path / "images", "a", names(50))
    trains = [n for n in names(400, start=50) if split.assign(n, 0.2, 0.15, 42) == "train"][:3]
    add_images(tmp_path / "images", "b", trains)
    with pytest.raises(ValueError, match=r"class 'b' has no images in \['valid'\]"):
        manifest(tmp_path)
    assert not (tmp_path / "m.csv").exists()


def test_empty_class_is_an_error(tmp_path):
    add_images(tmp_path / "images", "a", names(50))
    with pytest.raises(ValueError, match=r"class 'b' has no images in \['train', 'valid'\]"):
        manifest(tmp_path)


def test_near_duplicates_share_their_group_leaders_split(tmp_path):
    stems = names(200)
    add_images(tmp_path / "images", "a", stems)
    add_images(tmp_path / "images", "b", names(100, start=200))
    leader = next(n for n in stems if split.assign(n, 0.2, 0.15, 42) == "test")
    copies = [n for n in stems if split.assign(n, 0.2, 0.15, 42) == "train"][:5]
    verify_csv = tmp_path / "verify.csv"
    rows = [{"path": (tmp_path / "images" / "a" / f"{n}.jpg").as_posix(), "group": f"data/raw/a/{leader}.png"}
            for n in [leader, *copies]]
    rows.append({"path": (tmp_path / "images" / "a" / f"{stems[-1]}.jpg").as_posix(), "group": ""})
    write_csv(verify_csv, rows, ["path", "group"])

    groups = split.near_duplicate_groups(verify_csv)
    assert len(groups) == 6
    rows = split.make_manifest(tmp_path / "images", ["a", "b"], 0.2, 0.15, 42, tmp_path / "m.csv", groups)
    by_stem = {Path(r["path"]).stem: r["split"] for r in rows}
    assert {by_stem[n] for n in [leader, *copies]} == {"test"}
    assert split.near_duplicate_groups(tmp_path / "absent.csv") == {}
