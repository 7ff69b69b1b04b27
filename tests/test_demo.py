"""demo.py: the offline web holds exactly the faults its parameters ask for, reproducibly."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from bearid import demo
from bearid.params import DemoParams

CLASSES = ["three", "five", "eight"]
P = DemoParams(img_size=16, per_class=12, mislabeled=0.08, out_of_place=0.03,
               corrupt_per_kind=2, duplicates=3, colours="grey", seed=0)


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
                   duplicates=0, colours="grey", seed=0)
    _, truth = build(tmp_path, monkeypatch, p)
    counts = Counter(r["true_class"] for r in truth)
    assert set(counts) == set(CLASSES) and min(counts.values()) > 150  # sklearn has ~180 per digit
    assert {r["fault"] for r in truth} == {"none"}


def digest(items: list[demo.WebItem]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.listed_class}\0{it.true_class}\0{it.fault}\0{it.ext}\0".encode())
        h.update(b"dead link" if it.data is None else hashlib.sha256(it.data).digest())
    return h.hexdigest()


def test_grey_web_is_the_one_the_pipeline_was_measured_on():
    """params.yaml's demo world, byte for byte, as before `colours` existed: grey must never drift."""
    p = DemoParams(img_size=64, per_class=0, mislabeled=0.08, out_of_place=0.03, corrupt_per_kind=2,
                   duplicates=5, colours="grey", seed=0)
    items = demo.make_items(["three", "five", "eight"], p)
    assert digest(items) == "dcfa8d4c4a4e10f85d69e4cf992198a72c5477b8c067d18ffd10c01f2b6cfcdc"


VARIED = DemoParams(img_size=16, per_class=0, mislabeled=0.08, out_of_place=0.03, corrupt_per_kind=1,
                    duplicates=3, colours="varied", seed=0)


@pytest.fixture(scope="module")
def worlds() -> tuple[list[demo.WebItem], list[demo.WebItem]]:
    """The grey and the varied world of one seed (all ~540 digits of three classes, 16 px)."""
    return (demo.make_items(CLASSES, dataclasses.replace(VARIED, colours="grey")),
            demo.make_items(CLASSES, VARIED))


def rgb(item: demo.WebItem) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(item.data)).convert("RGB"), dtype=float) / 255


def test_varied_injects_the_same_faults_as_grey(worlds):
    grey, varied = worlds
    assert [(g.listed_class, g.true_class, g.fault) for g in grey] == \
        [(v.listed_class, v.true_class, v.fault) for v in varied]
    for g, v in zip(grey, varied):
        if g.fault == "out_of_place":
            assert g.data == v.data  # the same photo crops: images of no class
        elif g.fault in ("none", "mislabeled", "duplicate"):
            assert g.data != v.data
    dups = [v for v in varied if v.fault == "duplicate"]
    assert dups and all(any(d.data == v.data for v in varied if v.fault == "none") for d in dups)


def test_varied_digits_stay_legible(worlds):
    """The grey twin of each image marks its strokes; in colour they keep most of MIN_CONTRAST of luma.

    Most, not all: stroke pixels hold 90-100% ink after upscaling, background ones up to 5%.
    """
    grey, varied = worlds
    checked = 0
    for g, v in zip(grey, varied):
        if g.fault not in ("none", "mislabeled"):
            continue
        ink = 1 - rgb(g)[..., 0]
        luma = rgb(v) @ demo.LUMA
        strokes, background = luma[ink > 0.9], luma[ink < 0.05]
        assert abs(strokes.mean() - background.mean()) > 0.8 * demo.MIN_CONTRAST
        checked += 1
    assert checked > 500


def mean_colours(items: list[demo.WebItem]) -> tuple[np.ndarray, np.ndarray]:
    digits = [it for it in items if it.fault == "none"]
    return np.array([rgb(it).mean(axis=(0, 1)) for it in digits]), np.array([it.true_class for it in digits])


def test_varied_colours_vary_within_each_class(worlds):
    x, y = mean_colours(worlds[1])
    for cls in CLASSES:
        assert (x[y == cls].std(axis=0) > 0.1).all(), cls
    gx, _ = mean_colours(worlds[0])
    assert (np.abs(gx - gx[:, :1]) < 0.01).all()  # grey: every channel alike


def nearest_mean_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Class means from every other image; accuracy of the nearest mean on the rest."""
    fit, test = np.arange(len(y)) % 2 == 0, np.arange(len(y)) % 2 == 1
    means = np.array([x[fit & (y == c)].mean(axis=0) for c in CLASSES])
    predicted = np.array(CLASSES)[((x[test, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)]
    return float((predicted == y[test]).mean())


def test_varied_mean_colour_does_not_tell_the_class(worlds):
    x, y = mean_colours(worlds[1])
    assert nearest_mean_accuracy(x, y) < 0.45  # chance: 1/3 with ~90 test images per class
