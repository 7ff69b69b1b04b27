"""sources.py: hand-made URL lists and DuckDuckGo (through a fake search) into per-class lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from bearid import sources
from bearid.params import DemoParams, FetchParams
from bearid.sources import SourceError


def files_params(folder: Path, **kw) -> FetchParams:
    return FetchParams(source="files", classes=["grizzly", "black"], files_dir=str(folder), **kw)


def test_files_source_reads_urls_skipping_blanks_comments_and_bad_lines(tmp_path, capsys):
    (tmp_path / "grizzly.txt").write_text(
        "https://a.example/1.jpg\n\n   \n# a comment\n  http://b.example/2.png  \n"
        "not a url\nftp://c.example/3.jpg\nfile:web/4.png\n")
    (tmp_path / "black.txt").write_text("")
    urls = sources.from_files(files_params(tmp_path))
    assert urls == {"grizzly": ["https://a.example/1.jpg", "http://b.example/2.png", "file:web/4.png"],
                    "black": []}
    out = capsys.readouterr().out
    assert f"{tmp_path / 'grizzly.txt'}:6" in out and f"{tmp_path / 'grizzly.txt'}:7" in out


def test_files_source_skips_unparsable_url(tmp_path):
    """A malformed line is skipped with a message like any other bad line, not a bare ValueError."""
    (tmp_path / "grizzly.txt").write_text("http://[::1/broken.jpg\nhttps://a.example/1.jpg\n")
    (tmp_path / "black.txt").write_text("")
    assert sources.from_files(files_params(tmp_path))["grizzly"] == ["https://a.example/1.jpg"]


def test_files_source_missing_class_file_names_the_path(tmp_path):
    (tmp_path / "grizzly.txt").write_text("https://a.example/1.jpg\n")
    with pytest.raises(SourceError) as e:
        sources.from_files(files_params(tmp_path))
    assert str(tmp_path / "black.txt") in str(e.value)


class FakeSearch:
    """Stands in for DDGS().images: records queries, fails the first `fail` calls."""

    def __init__(self, fail: int = 0):
        self.fail, self.calls = fail, []

    def __call__(self, query: str, max_results: int) -> list[dict]:
        self.calls.append((query, max_results))
        if len(self.calls) <= self.fail:
            raise TimeoutError("rate limited")
        return [{"image": f"https://img.example/{query.replace(' ', '_')}/{i}.jpg", "title": "t"}
                for i in range(3)] + [{"title": "no image"}, {"image": ""}]


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(sources.time, "sleep", slept.append)
    return slept


def ddg_params(**kw) -> FetchParams:
    return FetchParams(source="ddg", classes=["grizzly", "black"], query="{cls} bear", max_per_class=7, **kw)


def test_ddg_results_are_mapped_to_urls(no_sleep):
    search = FakeSearch()
    urls = sources.from_ddg(ddg_params(), search=search)
    assert search.calls == [("grizzly bear", 7), ("black bear", 7)]
    assert urls["grizzly"] == [f"https://img.example/grizzly_bear/{i}.jpg" for i in range(3)]
    assert urls["black"] == [f"https://img.example/black_bear/{i}.jpg" for i in range(3)]
    assert no_sleep == []


def test_ddg_failure_is_retried(no_sleep):
    search = FakeSearch(fail=2)
    urls = sources.from_ddg(ddg_params(), search=search, retries=3)
    assert len(urls["grizzly"]) == 3
    assert [q for q, _ in search.calls] == ["grizzly bear"] * 3 + ["black bear"]
    assert no_sleep == [1, 2]


def test_ddg_gives_up_with_source_error(no_sleep):
    search = FakeSearch(fail=100)
    with pytest.raises(SourceError, match=r"'grizzly bear' failed after 3 tries \(TimeoutError: rate limited\)"):
        sources.from_ddg(ddg_params(), search=search, retries=3)
    assert len(search.calls) == 3
    assert no_sleep == [1, 2]


def test_fetch_deduplicates_caps_and_writes_lists(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "grizzly.txt").write_text("".join(f"https://x.example/{i % 4}.jpg\n" for i in range(10)))
    (lists / "black.txt").write_text("https://y.example/b.jpg\nhttps://y.example/a.jpg\nhttps://y.example/b.jpg\n")
    p = files_params(lists, max_per_class=3)
    out = tmp_path / "urls"
    urls = sources.fetch(p, out, tmp_path / "web")
    assert urls == {"grizzly": [f"https://x.example/{i}.jpg" for i in range(3)],
                    "black": ["https://y.example/b.jpg", "https://y.example/a.jpg"]}
    assert sources.read_lists(out, p.classes) == urls
    assert (out / "grizzly.txt").read_text() == "".join(u + "\n" for u in urls["grizzly"])
    assert not list(out.glob(".*"))  # no temp files left


def test_fetch_ddg_goes_through_from_ddg(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(sources, "from_ddg", lambda p: seen.append(p) or
                        {"grizzly": ["https://a/1", "https://a/1", "https://a/2"], "black": []})
    urls = sources.fetch(ddg_params(), tmp_path / "urls", tmp_path / "web")
    assert len(seen) == 1
    assert urls == {"grizzly": ["https://a/1", "https://a/2"], "black": []}
    assert (tmp_path / "urls" / "black.txt").read_text() == ""


def test_fetch_demo_writes_relative_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = FetchParams(classes=["three", "five"], max_per_class=5,
                    demo=DemoParams(img_size=8, per_class=6, corrupt_per_kind=1, duplicates=1))
    urls = sources.fetch(p, Path("urls"), Path("web"))
    assert all(len(lst) == 5 for lst in urls.values())
    assert all(u.startswith("file:web/") for lst in urls.values() for u in lst)
    assert sources.read_lists(Path("urls"), p.classes) == urls
