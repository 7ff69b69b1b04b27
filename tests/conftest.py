"""Shared fixtures.

`browser`/`page`: a headless Chromium for the tests that need a real browser (review page,
plots page). Uses Debian's system Chromium through Playwright, never a downloaded browser.
A missing browser fails the test loudly with the command that installs it.

`project`/`project_copy`: ONE tiny, fully run git+dvc copy of the project, built once per
session and reused by every DVC end-to-end test; tests that change it get their own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


BROWSER_FIXTURES = {"browser", "page"}
SLOW_FIXTURES = {"project", "project_copy", "matrix_repo"}


def pytest_collection_modifyitems(items):
    """Tiers by what a test uses: `make test-quick` deselects `browser` and `slow` (docs/development.md)."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run 'make browser' "
                    "(apt-get install chromium) or set CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page whose console errors and failed requests are collected in `page.errors`."""
    context = browser.new_context()
    p = context.new_page()
    p.errors = []
    p.on("console", lambda m: m.type == "error" and p.errors.append(m.text))
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    yield p
    context.close()


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
    return {k: merge(base[k], v) if isinstance(v, dict) and k in base else v for k, v in {**base, **update}.items()}


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


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """ONE git+dvc copy of the project with the TINY params after a full `dvc repro`, results committed.

    Read-only for tests: a test that changes anything works on `project_copy` (or a git clone).
    """
    repo = tmp_path_factory.mktemp("project")
    for name in project_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    run(["git", "init", "-q", "-b", "main"], repo)
    sections = yaml.safe_load((repo / "params.yaml").read_text())
    set_params(repo, {k: v for k, v in TINY.items() if k in sections})
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny project"], repo)  # as a clone has; DVCLive needs a commit
    log = run(["dvc", "repro"], repo)
    assert ran(log) == set(STAGES), log
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny pipeline results"], repo)
    return repo


@pytest.fixture
def project_copy(project: Path, tmp_path: Path) -> Path:
    """This test's own copy of the fully run tiny project, free to change."""
    return copy_repo(project, tmp_path / "repo")


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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A folder with an exported untrained model, shared by a test module."""
    out = tmp_path_factory.mktemp("model")
    export_untrained(out)
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """On a shared 2-core machine two threads spin on each other's barriers: one is many times faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
