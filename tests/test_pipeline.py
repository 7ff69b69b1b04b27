"""End to end: the real `dvc` CLI ran the whole pipeline in a throwaway git+dvc copy of the project
(the session's `project` fixture, tiny params); its outputs are sane and reruns are selective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from helpers import ran, run, set_params, stale_stages

from bearid.atomic import read_csv
from bearid.contact_sheet import SHEETS, sheet_of, title_line
from bearid.diagnosis import ADVICE
from bearid.evaluate import truth_by_stem


# The seeded tiny demo's faults (TINY in tests/helpers.py): one file of each corrupt kind and two
# duplicates, exact whatever the processor, since no floating-point training is involved.
DOWNLOADED = {
    "eight": {"attempted": 35, "ok": 31, "duplicate": 1, "failed": 3,
              "failed_by_reason": {"empty": 1, "file_not_found": 1, "not_an_image": 1}},
    "three": {"attempted": 33, "ok": 32, "duplicate": 1, "failed": 0, "failed_by_reason": {}},
}
VERIFIED = {
    "eight": {"checked": 31, "ok": 30, "rejected": 1, "rejected_by_reason": {"truncated": 1},
              "in_near_duplicate_groups": 0},
    "three": {"checked": 32, "ok": 32, "rejected": 0, "rejected_by_reason": {}, "in_near_duplicate_groups": 0},
}


def count_of(rate: float, n: int) -> int:
    """The whole number of images a rate over n images stands for; fails if it stands for none."""
    assert rate * n == pytest.approx(round(rate * n), abs=1e-4), (rate, n)
    return round(rate * n)


def test_acquisition_finds_exactly_the_demos_faults(project: Path):
    assert json.loads((project / "data/download_metrics.json").read_text()) == DOWNLOADED
    assert json.loads((project / "data/verify_metrics.json").read_text()) == VERIFIED
    manifest = read_csv(project / "data/manifest.csv")
    assert len(manifest) == 62 and {r["split"] for r in manifest} == {"train", "valid", "test"}
    assert all((project / r["path"]).is_file() for r in manifest)


def test_training_records_agree(project: Path):
    """Metrics, history, diagnosis and LR finder of train and retrain tell one consistent story."""
    params = yaml.safe_load((project / "params.yaml").read_text())["train"]
    for stage, manifest in (("train", "data/manifest.csv"), ("retrain", "data/clean/manifest.csv")):
        meta = json.loads((project / f"data/{stage}/model.json").read_text())
        assert meta["classes"] == ["eight", "three"]
        live = json.loads((project / f"data/{stage}/live/metrics.json").read_text())
        last = read_csv(project / f"data/{stage}/history.csv")[-1]
        n_valid = sum(r["split"] == "valid" for r in read_csv(project / manifest))
        count_of(live["error_rate"], n_valid)
        assert live["error_rate"] == pytest.approx(float(last["error_rate"]))
        assert live["accuracy"] == pytest.approx(1 - live["error_rate"])
        assert live["lr"] == params["lr"]

        diagnosis = json.loads((project / f"data/{stage}/diagnosis.json").read_text())
        assert diagnosis["verdict"] == live["diagnosis"] and diagnosis["advice"] == ADVICE[diagnosis["verdict"]]

        curve = read_csv(project / f"data/{stage}/lr_find.csv")  # may stop early when the loss diverges
        lrs = [float(r["lr"]) for r in curve]
        assert 1 <= len(lrs) <= params["lr_find_iters"] and lrs == sorted(lrs)
        assert lrs[0] <= live["lr_suggested"] <= lrs[-1]
        assert live["lr_min"] == pytest.approx(min(live["lr_suggested"], params["lr"] / 10))


def test_cleaning_and_evaluation_outputs(project: Path):
    manifest = read_csv(project / "data/manifest.csv")
    candidates = read_csv(project / "data/interpret/candidates.csv")
    group = {"likely_out_of_place": 0, "likely_mislabeled": 1, "": 2}
    order = [(group[c["reason"]], -float(c["ood_score" if c["reason"] == "likely_out_of_place" else "score"]))
             for c in candidates]
    assert order == sorted(order)  # out of place, then mislabeled, then the rest; most suspicious first
    assert len(candidates) == sum(r["split"] != "test" for r in manifest)
    for png in ("confusion.png", "top_losses.png"):
        assert (project / "data/interpret" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = read_csv(project / "data/clean/report.csv")
    noise = json.loads((project / "data/interpret/noise.json").read_text())  # the policy's evidence and cap
    given = {c["path"]: float(c["given_prob"]) for c in candidates}
    assert noise["images"] == len(candidates)
    assert noise["below"] == sum(p <= noise["threshold"] for p in given.values())
    policy = [r for r in report if r["decided_by"] == "policy"]
    assert len(policy) <= noise["faults"] and all(given[r["path"]] <= noise["threshold"] for r in policy)
    for sheet in SHEETS:  # what clean dropped or relabelled, a contact sheet per reason, empty ones too
        with Image.open(project / f"data/clean/sheets/{sheet}.png") as png:
            assert png.format == "PNG"
            assert png.text["Title"] == title_line(sum(sheet_of(r) == sheet for r in report), SHEETS[sheet])

    metrics = json.loads((project / "data/evaluate/metrics.json").read_text())
    test = [r for r in read_csv(project / "data/clean/manifest.csv") if r["split"] == "test"]
    assert metrics["test_images"] == len(test)
    for model in ("before", "after"):
        count_of(metrics[model]["accuracy"], len(test))
        assert metrics[model]["error_rate"] == pytest.approx(1 - metrics[model]["accuracy"])
        assert set(metrics[model]["per_class"]) == {"eight", "three"}
    # the retrained model's answers, one row per test image in order: its scores follow from them
    answers = read_csv(project / "data/evaluate/confusion.csv")
    assert [a["actual"] for a in answers] == [r["label"] for r in test]
    assert metrics["after"]["accuracy"] == pytest.approx(sum(a["actual"] == a["predicted"] for a in answers) / len(test))
    truth = truth_by_stem(project / "data/web/ground_truth.csv")
    true_class = [truth.get(Path(r["path"]).stem, {}).get("true_class") for r in test]
    known = [(t, a["predicted"]) for t, a in zip(true_class, answers) if t]
    assert metrics["after"]["true_label_accuracy"] == pytest.approx(sum(t == p for t, p in known) / len(known))
    assert metrics["cleaning"]["mislabeled_in_data"] > 0


def test_second_repro_runs_nothing(project_copy: Path):
    log = run(["dvc", "repro"], project_copy)
    assert ran(log) == set(), log
    assert stale_stages(project_copy) == set()


def test_changing_lr_makes_the_training_stages_stale(project_copy: Path):
    """Only the stages that read train.lr are stale; test_experiments.py runs the change (`dvc exp run
    -S train.lr=...`) and checks that only training and what it feeds reran; test_rerun.py covers every key."""
    set_params(project_copy, {"train": {"lr": 0.03}})
    assert stale_stages(project_copy) == {"train", "retrain"}


RECORDS = ["data/train/live/metrics.json", "data/train/history.csv", "data/train/lr_find.csv",
           "data/train/diagnosis.json", "data/train/model.safetensors", "data/crossval/metrics.json",
           "data/crossval/probs.csv"]


def test_forced_rerun_gives_byte_identical_records(project, project_copy):
    """Same params, same data, CPU: `dvc repro --force` of the training stages writes the same bytes."""
    log = run(["dvc", "repro", "--force", "--single-item", "train", "crossval"], project_copy)
    assert ran(log) == {"train", "crossval"}, log
    for name in RECORDS:
        assert (project_copy / name).read_bytes() == (project / name).read_bytes(), name


def test_every_file_the_stages_write_is_declared(project):
    """After `dvc repro`, every file under data/ is a declared out, metric or plot (or inside one), so no
    stage output escapes DVC's tracking; the .gitignore files DVC writes are the only others."""
    from dvc.repo import Repo

    with Repo(str(project)) as dvc:
        declared = {Path(o.fs_path).relative_to(project) for s in dvc.index.stages for o in s.outs}
    written = [p.relative_to(project) for p in (project / "data").rglob("*") if p.is_file()]
    undeclared = [str(p) for p in written
                  if p.name != ".gitignore" and not any(p == d or d in p.parents for d in declared)]
    assert undeclared == []
    assert len(written) > 100 and Path("data/train/live/metrics.json") in declared
