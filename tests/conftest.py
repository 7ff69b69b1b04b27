"""Shared fixtures. `browser`: a headless Chromium for the tests that need a real browser (review page, plots page).

Uses Debian's system Chromium through Playwright, never a downloaded browser.
A missing browser fails the test loudly with the command that installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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
