"""Helpers the tests share: the tiny project's params, running dvc and git, a tiny exported model.

Fixtures live in conftest.py; these are plain functions and constants, imported by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# --- One tiny, fully run copy of the project, shared by the DVC end-to-end tests ---------------
ROOT = Path(__file__).resolve().parents[1]
STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])

# The tiny params, in one place: every end-to-end test runs the pipeline with these.
TINY = {
    "fetch": {"classes": ["three", "eight"],
              "demo": {"img_size": 32, "per_class": 30, "corrupt_per_kind": 1, "duplicates": 2}},
    "verify": {"max_size": 32},
    "split": {"valid_pct": 0.25, "test_pct": 0.25},
    "train": {"img_size": 32, "batch_size": 8, "freeze_epochs": 1, "epochs": 1, "lr_find_iters": 20},
    "crossval": {"folds": 2, "epochs": 1, "img_size": 32},
}


PROJECT_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def project_params(section: str, **changes):
    """A section's validated params as the project's params.yaml holds them, with `changes` applied
    (a nested mapping is merged): params.yaml is the one source of values, also for tests."""
    from bearid import params

    return params.parse(section, merge(PROJECT_PARAMS[section], changes))


def dvc_env() -> dict:
    """The environment for dvc and git in a test repo: the venv first on PATH, an identity, no analytics."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    """Run a command, fail the test with its output when it fails, return stdout + stderr."""
    proc = subprocess.run(cmd, cwd=cwd, env={**dvc_env(), **(env or {})}, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def merge(base: dict, update: dict) -> dict:
    return {k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
            for k, v in {**base, **update}.items()}


def set_params(repo: Path, update: dict) -> None:
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), update), sort_keys=False))


def ran(log: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` log says it ran."""
    return {s for s in STAGES if f"Running stage '{s}'" in log}


def stale_stages(repo: Path) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], repo)))


def project_files() -> list[str]:
    """The project as a clone would have it, plus files not yet committed; never pipeline outputs."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    return [f for f in listed if f and (ROOT / f).is_file() and f != "dvc.lock"
            and not (f.startswith("data/") and not f.endswith(".gitignore"))]


def copy_repo(src: Path, dst: Path) -> Path:
    """A private copy of a test repo: git history, DVC cache and workspace (not DVC's tmp state)."""
    shutil.copytree(src, dst, symlinks=True, ignore=lambda d, names: ["tmp"] if d.endswith(".dvc") else [])
    return dst


# A tiny untrained exported model, for the tests of export, prediction and serving.
MODEL_CLASSES = ["black", "grizzly", "teddy"]
MODEL_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def export_untrained(out: Path, img_size: int = 32):
    """Export a seeded, untrained resnet18 for MODEL_CLASSES into `out`; returns (model, meta)."""
    import torch
    import torchvision
    from fastai.vision.learner import create_vision_model

    from bearid.export import save_model

    torch.manual_seed(0)
    model = create_vision_model(torchvision.models.resnet18, len(MODEL_CLASSES), pretrained=False).eval()
    return model, save_model(model, MODEL_CLASSES, project_params("train", img_size=img_size), MODEL_STATS, out)
