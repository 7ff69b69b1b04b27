"""End to end: the real `dvc` CLI ran the whole pipeline in a throwaway git+dvc copy of the project
(the session's `project` fixture, tiny params); its outputs are sane and reruns are selective."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import ran, run, set_params, stale_stages

from bearid.atomic import read_csv


def test_every_output_is_there_and_sane(project: Path):
    repo = project
    report = read_csv(repo / "data/download.csv")
    assert {r["status"] for r in report} == {"ok", "duplicate", "failed"}
    failed = {r["reason"] for r in report if r["status"] == "failed"}
    rejected = {r["reason"] for r in read_csv(repo / "data/verify.csv") if r["status"] == "rejected"}
    assert {"empty", "not_an_image", "truncated"} <= failed | rejected  # the demo's injected bad files

    manifest = read_csv(repo / "data/manifest.csv")
    assert {r["split"] for r in manifest} == {"train", "valid", "test"}
    assert all((repo / r["path"]).is_file() for r in manifest)

    for stage in ("train", "retrain"):
        meta = json.loads((repo / f"data/{stage}/model.json").read_text())
        assert meta["classes"] == ["eight", "three"]
        live = json.loads((repo / f"data/{stage}/live/metrics.json").read_text())
        assert 0 <= live["error_rate"] <= 1
        assert live["lr"] == yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"]
        assert json.loads((repo / f"data/{stage}/diagnosis.json").read_text())["verdict"]
        assert read_csv(repo / f"data/{stage}/lr_find.csv")  # may stop early when the loss diverges

    candidates = read_csv(repo / "data/interpret/candidates.csv")
    group = {"likely_out_of_place": 0, "likely_mislabeled": 1, "": 2}
    order = [(group[c["reason"]], -float(c["ood_score" if c["reason"] == "likely_out_of_place" else "score"]))
             for c in candidates]
    assert order == sorted(order)  # out of place, then mislabeled, then the rest; most suspicious first
    assert len(candidates) == sum(r["split"] != "test" for r in manifest)
    for png in ("confusion.png", "top_losses.png"):
        assert (repo / "data/interpret" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
    for model in ("before", "after"):
        assert 0 <= metrics[model]["accuracy"] <= 1
        assert set(metrics[model]["per_class"]) == {"eight", "three"}
        assert 0 <= metrics[model]["true_label_accuracy"] <= 1
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
