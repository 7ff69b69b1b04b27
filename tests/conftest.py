"""Shared fixtures.

`browser`/`page`: a headless Chromium for the tests that need a real browser (review page,
plots page). Uses Debian's system Chromium through Playwright, never a downloaded browser.
A missing browser fails the test loudly with the command that installs it.

`project`/`project_copy`: ONE tiny, fully run git+dvc copy of the project, built once per
session and reused by every DVC end-to-end test; tests that change it get their own copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, STAGES, TINY, copy_repo, export_untrained, project_files, ran, run, set_params

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
