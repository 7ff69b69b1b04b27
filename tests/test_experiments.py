"""Experiments with the real dvc CLI, as docs/experiments.md's recipes run them: one in the foreground, one
through the queue; then compare (exp show, metrics diff, plots diff) and keep one (apply, branch)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers import dvc_env, ran, run

from bearid.atomic import read_csv

KEEP = r"Experiment|train\.lr$|train\.epochs$|.*accuracy$"  # docs/experiments.md's `dvc exp show --keep`


def experiments(repo: Path) -> dict[str, dict]:
    """name -> data of every experiment `dvc exp show --json` lists."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    return {e["name"]: e["revs"][0]["data"] for ws in shown for e in ws.get("experiments") or []}


def wait_for(repo: Path, name: str, timeout: float = 600) -> None:
    """Poll `dvc queue status` until the queued experiment `name` succeeded (a busy worker may not
    answer the status query at once, so `Running` can be missing for a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = next((ln for ln in run(["dvc", "queue", "status"], repo).splitlines() if f" {name} " in ln), "")
        if "Success" in line:
            return
        assert "Failed" not in line, run(["dvc", "queue", "logs", name], repo)
        time.sleep(3)
    raise AssertionError(f"{name} not done after {timeout}s:\n{run(['dvc', 'queue', 'status'], repo)}")


def test_two_experiments_compare_and_one_is_kept(project_copy: Path, tmp_path: Path, request):
    repo = project_copy
    request.addfinalizer(lambda: subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=repo, env=dvc_env(),
                                                capture_output=True))  # no worker outlives the test
    log = run(["dvc", "exp", "run", "-n", "lr-high", "-S", "train.lr=0.02"], repo)
    # the stages reading train.lr, what their new models feed, and nothing upstream; interpret's output
    # may come out the same (it ranks with crossval's probabilities), and then clean is skipped
    assert {"train", "retrain", "evaluate"} <= ran(log) <= {"train", "interpret", "clean", "retrain", "evaluate"}, log
    run(["dvc", "exp", "run", "--queue", "-n", "lr-low", "-S", "train.lr=0.001"], repo)
    run(["dvc", "queue", "start"], repo)
    wait_for(repo, "lr-low")
    found = experiments(repo)
    assert {"lr-high", "lr-low"} <= set(found), found
    live = {}
    n_valid = sum(r["split"] == "valid" for r in read_csv(repo / "data/manifest.csv"))
    for name, lr in (("lr-high", 0.02), ("lr-low", 0.001)):
        assert found[name]["params"]["params.yaml"]["data"]["train"]["lr"] == lr
        live[name] = found[name]["metrics"]["data/train/live/metrics.json"]["data"]
        assert live[name]["lr"] == lr
        errors = live[name]["error_rate"] * n_valid  # a count of valid images, scored by the experiment's model
        assert errors == pytest.approx(round(errors), abs=1e-6)
        assert live[name]["accuracy"] == pytest.approx(1 - live[name]["error_rate"])
    assert live["lr-high"] != live["lr-low"]

    changed = json.loads(run(["dvc", "metrics", "diff", "lr-low", "lr-high", "--json"], repo))
    train = changed["data/train/live/metrics.json"]
    assert train["lr"] == {"old": 0.001, "new": 0.02, "diff": pytest.approx(0.019)}
    assert {"train.loss", "eval.loss"} <= set(train), train
    table = run(["dvc", "metrics", "diff", "lr-low", "lr-high"], repo)
    assert re.search(r"data/train/live/metrics.json +lr +0.001 +0.02 ", table), table
    assert re.search(r"data/retrain/live/metrics.json +train.loss ", table), table
    changed_only = run(["dvc", "exp", "show", "--csv", "--only-changed", "--drop", "Created"], repo)
    assert "lr-high" in changed_only and "train.lr" in changed_only.splitlines()[0], changed_only
    table = run(["dvc", "exp", "show", "--csv", "--drop", ".*", "--keep", KEEP], repo).splitlines()
    assert {"Experiment", "train.lr", "train.epochs", "before.accuracy", "after.accuracy",
            "data/train/live/metrics.json:accuracy"} <= set(table[0].split(",")), table[0]
    assert "Created" not in table[0] and "train.wd" not in table[0]
    assert {"lr-high", "lr-low"} <= {row.split(",")[0] for row in table}
    run(["dvc", "plots", "diff", "lr-low", "lr-high", "-o", str(tmp_path / "plots")], repo)
    assert (tmp_path / "plots/index.html").stat().st_size > 0

    run(["dvc", "exp", "branch", "lr-low", "lr-low-branch"], repo)
    assert "lr-low-branch" in run(["git", "branch"], repo)
    run(["dvc", "exp", "apply", "lr-high"], repo)
    assert json.loads((repo / "data/train/live/metrics.json").read_text())["lr"] == 0.02
    assert "data/train/live/metrics.json" in run(["dvc", "metrics", "diff"], repo)  # workspace vs HEAD
    assert run(["dvc", "status"], repo).strip().endswith("Data and pipelines are up to date.")


def test_every_section_is_set_by_a_plain_set_param(project_copy: Path, request):
    """`dvc exp run -S section.key=value` addresses every section's keys, the final model's own training
    settings (retrain.*, null in params.yaml) included. One real run changes keys whose reruns are cheap;
    split, crossval and train, whose changes retrain everything, are checked by a queued experiment."""
    repo = project_copy
    request.addfinalizer(lambda: subprocess.run(["dvc", "queue", "remove", "--all"], cwd=repo, env=dvc_env(),
                                                capture_output=True))
    cheap = {"fetch.search_retries": 5, "download.backoff": 0.25, "verify.workers": 1, "interpret.top_k": 8,
             "clean.max_removed": 0, "retrain.epochs": 2, "evaluate.batch_size": 64}
    costly = {"split.seed": 7, "crossval.lr": 0.02, "train.wd": 0.02}
    log = run(["dvc", "exp", "run", "-n", "every-section", *[a for k, v in cheap.items() for a in ("-S", f"{k}={v}")]],
              repo)
    assert {"retrain", "evaluate"} <= ran(log) and not ran(log) & {"train", "crossval"}, log  # no retraining
    run(["dvc", "exp", "run", "--queue", "-n", "costly", *[a for k, v in costly.items() for a in ("-S", f"{k}={v}")]],
        repo)
    found = experiments(repo)
    for name, values in (("every-section", cheap), ("costly", costly)):
        held = found[name]["params"]["params.yaml"]["data"]
        for key, value in values.items():
            section, leaf = key.split(".")
            assert held[section][leaf] == value, (name, key, held[section])
    run(["dvc", "exp", "apply", "every-section"], repo)
    history = (repo / "data/retrain/history.csv").read_text().splitlines()
    assert len(history) == 1 + 1 + 2  # header, the frozen epoch, retrain.epochs unfrozen ones
