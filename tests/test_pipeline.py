"""End to end: the real `dvc` CLI runs the whole pipeline in a throwaway git+dvc copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bearid.atomic import read_csv

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["bearid", "stages", "cleaning", "urls", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"]
STAGES = ["fetch_urls", "download", "verify", "split", "train", "interpret", "clean", "retrain", "evaluate"]

TINY = {
    "fetch": {"classes": ["three", "eight"],
              "demo": {"img_size": 32, "per_class": 30, "corrupt_per_kind": 1, "duplicates": 2}},
    "verify": {"max_size": 32},
    "split": {"valid_pct": 0.25, "test_pct": 0.25},
    "train": {"img_size": 32, "batch_size": 8, "freeze_epochs": 1, "epochs": 1, "lr_find_iters": 20},
}


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def merge(base: dict, update: dict) -> dict:
    return {k: merge(base[k], v) if isinstance(v, dict) and k in base else v for k, v in {**base, **update}.items()}


def set_params(repo: Path, update: dict) -> None:
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), update), sort_keys=False))


def stale_stages(repo: Path) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], repo)))


def ran(log: str) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in log}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git+dvc repo holding the project with tiny params, after one full `dvc repro`."""
    repo = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    set_params(repo, TINY)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny project"], repo)  # as a clone has; DVCLive needs a commit
    log = run(["dvc", "repro"], repo)
    assert ran(log) == set(STAGES), log
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny pipeline results"], repo)
    return repo


def test_every_output_is_there_and_sane(repo: Path):
    report = read_csv(repo / "data/download.csv")
    assert {r["status"] for r in report} == {"ok", "duplicate", "failed"}
    rejected = [r for r in read_csv(repo / "data/verify.csv") if r["status"] == "rejected"]
    assert {r["reason"].split(":")[0] for r in rejected} == {"corrupt", "not an image"}

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
    losses = [float(c["loss"]) for c in candidates]
    assert losses == sorted(losses, reverse=True)
    assert len(candidates) == sum(r["split"] != "test" for r in manifest)
    for png in ("confusion.png", "top_losses.png"):
        assert (repo / "data/interpret" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
    for model in ("before", "after"):
        assert 0 <= metrics[model]["accuracy"] <= 1
        assert set(metrics[model]["per_class"]) == {"eight", "three"}
        assert 0 <= metrics[model]["true_label_accuracy"] <= 1
    assert metrics["cleaning"]["mislabeled_in_data"] > 0


def test_second_repro_runs_nothing(repo: Path):
    log = run(["dvc", "repro"], repo)
    assert ran(log) == set(), log
    assert stale_stages(repo) == set()


def test_changing_lr_reruns_training_onward_only(repo: Path):
    set_params(repo, {"train": {"lr": 0.03}})
    assert stale_stages(repo) == {"train", "retrain"}  # the stages that read train.*
    downstream = {"train", "interpret", "clean", "retrain", "evaluate"}
    log = run(["dvc", "repro"], repo)
    assert ran(log) == downstream, log
    run(["git", "checkout", "--", "params.yaml"], repo)
    run(["dvc", "checkout", "-q"], repo)


def test_experiment_shows_up(repo: Path):
    run(["dvc", "exp", "run", "-n", "lr-high", "-S", "train.lr=0.02"], repo)
    exps = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    found = {e["name"]: e["revs"][0]["data"] for ws in exps for e in ws.get("experiments") or []}
    assert "lr-high" in found, exps
    assert found["lr-high"]["params"]["params.yaml"]["data"]["train"]["lr"] == 0.02
    live = found["lr-high"]["metrics"]["data/train/live/metrics.json"]["data"]
    assert live["lr"] == 0.02 and 0 <= live["error_rate"] <= 1
