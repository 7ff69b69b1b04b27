"""params_doc.py: docs/parameters.md is generated from bearid/params.py and params.yaml, and committed fresh."""

from __future__ import annotations

from pathlib import Path

from bearid import params_doc

ROOT = Path(__file__).resolve().parents[1]


def test_committed_page_is_fresh():
    assert (ROOT / "docs/parameters.md").read_text() == params_doc.render(ROOT / "params.yaml"), \
        "docs/parameters.md is stale: run `bearid params-doc` and commit it"


def test_page_lists_every_key_with_its_meaning_range_and_value():
    page = params_doc.render(ROOT / "params.yaml")
    assert "| `train.lr` | float |  | `0.01` | peak learning rate" in page
    assert "| `fetch.demo.mislabeled` | float | 0 to 0.5 | `0.08` | share of images given a wrong class |" in page
    assert "| `verify.resample` | bilinear \\| bicubic \\| lanczos |" in page
    assert "## retrain" in page and "`epochs`" in page.split("## retrain")[1]


def test_command_writes_the_page(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert params_doc.main(["--out", str(tmp_path / "p.md")]) == 0
    assert (tmp_path / "p.md").read_text() == params_doc.render(ROOT / "params.yaml")
