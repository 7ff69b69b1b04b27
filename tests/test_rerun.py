"""The rerun matrix: changing one thing makes exactly the stages that read it stale, nothing upstream.

DVC marks stale the stages whose own params or deps changed; when one reruns with new outputs,
what consumes them reruns in turn (the real repro cases here and in test_pipeline.py prove it).
So for every leaf key of params.yaml, every stage script and the decisions file, `dvc status`
must name exactly the stages that read it; the downstream rest follows from the DAG below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, copy_repo, ran, run, set_params
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from bearid.atomic import read_csv

# THE expected map, checked against dvc.yaml below: stage -> (params it reads, stages whose outputs it reads).
PIPELINE: dict[str, tuple[set[str], set[str]]] = {
    "fetch_urls": ({"fetch"}, set()),
    "download": ({"fetch.classes", "download"}, {"fetch_urls"}),
    "verify": ({"verify"}, {"download"}),
    "split": ({"fetch.classes", "split"}, {"verify"}),
    "train": ({"train", "verify.max_size"}, {"verify", "split"}),
    "crossval": ({"crossval", "train.arch", "train.pretrained", "train.batch_size", "train.seed", "verify.max_size"},
                 {"verify", "split"}),
    "interpret": ({"interpret"}, {"verify", "split", "train", "crossval"}),
    "clean": ({"fetch.classes", "clean"}, {"verify", "split", "interpret"}),
    "retrain": ({"train", "retrain", "verify.max_size"}, {"verify", "clean"}),
    "evaluate": ({"evaluate"}, {"fetch_urls", "split", "interpret", "clean", "train", "retrain"}),
}


def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf: scalars, lists and empty mappings."""
    keys = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys += leaf_keys(value, f"{path}.") if isinstance(value, dict) and value else [path]
    return keys


PARAM_KEYS = leaf_keys(yaml.safe_load((ROOT / "params.yaml").read_text()))


def readers(key: str) -> set[str]:
    """Stages that declare `key` or a section containing it (`train` covers `train.aug.do_flip`)."""
    return {stage for stage, (params, _) in PIPELINE.items()
            for p in params if key == p or key.startswith(f"{p}.")}


def downstream(stages: set[str]) -> set[str]:
    """The stages plus everything that consumes their outputs, transitively."""
    found = set(stages)
    while grown := {s for s, (_, up) in PIPELINE.items() if up & found} - found:
        found |= grown
    return found


def status(repo: Path) -> set[str]:
    """Stale stages, from DVC's Python API in-process (a `dvc status` CLI call costs seconds)."""
    with Repo(str(repo)) as dvc:
        return {name.split(":")[-1] for name in dvc.status()}


@pytest.fixture(scope="module")
def matrix_repo(project, tmp_path_factory) -> Path:
    """One private copy for the whole matrix: each case edits a file and puts it back."""
    repo = copy_repo(project, tmp_path_factory.mktemp("matrix") / "repo")
    assert status(repo) == set()
    return repo


def test_the_map_is_what_dvc_yaml_declares(project):
    """Adding or changing a stage without updating PIPELINE fails here, naming the stage."""
    with Repo(str(project)) as dvc:
        stages = {s.name: s for s in dvc.index.stages}
        graph = dvc.index.graph
        declared = {name: ({p for d in s.deps if isinstance(d, ParamsDependency) for p in d.params},
                           {u.name for u in graph.successors(s)}) for name, s in stages.items()}
    assert set(declared) - set(PIPELINE) == set(), "stages in dvc.yaml missing from PIPELINE"
    assert set(PIPELINE) - set(declared) == set(), "stages in PIPELINE missing from dvc.yaml"
    for name, (params, upstream) in PIPELINE.items():
        assert declared[name][0] == params, f"{name}: params in dvc.yaml differ from PIPELINE"
        assert declared[name][1] == upstream, f"{name}: upstream stages in dvc.yaml differ from PIPELINE"


def test_every_params_key_is_read_by_some_stage():
    unread = [k for k in PARAM_KEYS if not readers(k)]
    assert not unread
    print(f"rerun matrix: {len(PARAM_KEYS)} of {len(PARAM_KEYS)} params keys (100%)")


def changed(value, repo: Path):
    """A different value of the same kind; a path value points at a copy of the same file or folder."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, list):
        return value + value[:1]
    if isinstance(value, dict):
        return {"epochs": 2}
    if isinstance(value, str) and (repo / value).exists():
        copy = f"{value}.copy"
        (shutil.copytree if (repo / value).is_dir() else shutil.copy2)(repo / value, repo / copy)
        return copy
    return f"{value}-changed"


@pytest.mark.parametrize("key", PARAM_KEYS)
def test_changing_a_param_makes_exactly_its_readers_stale(matrix_repo: Path, key: str):
    path = matrix_repo / "params.yaml"
    original = path.read_text()
    tree = yaml.safe_load(original)
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node[part]
    node[leaf] = changed(node[leaf], matrix_repo)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    try:
        stale = status(matrix_repo)
    finally:
        path.write_text(original)
    assert stale == readers(key), f"{key}: stale {sorted(stale)}"
    assert stale <= downstream(readers(key))  # nothing upstream of its readers


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_editing_a_stage_script_makes_only_that_stage_stale(matrix_repo: Path, stage: str):
    script = matrix_repo / "stages" / f"{stage}.py"
    original = script.read_text()
    script.write_text(original + "\n# edited\n")
    try:
        assert status(matrix_repo) == {stage}
    finally:
        script.write_text(original)


def test_a_new_decision_reruns_clean_onward_only(project_copy: Path):
    """A human decision changes clean's input only; the new cleaned manifest then retrains and evaluates."""
    repo = project_copy
    image = next(r["path"] for r in read_csv(repo / "data/manifest.csv") if r["split"] == "train")
    decisions = repo / "cleaning/decisions.csv"
    decisions.write_text(decisions.read_text() + f"{image},delete,\n")
    set_params(repo, {"clean": {"beyond_estimate": True}})  # the tiny project may show no evident fault
    assert status(repo) == {"clean"}
    log = run(["dvc", "repro"], repo)
    assert ran(log) == downstream({"clean"}) == {"clean", "retrain", "evaluate"}, log
    assert image not in {r["path"] for r in read_csv(repo / "data/clean/manifest.csv")}
