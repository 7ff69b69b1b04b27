"""sources.py: hand-made URL lists and DuckDuckGo (through a fake of the ddgs client) into per-class lists."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import project_params
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from bearid import sources
from bearid.params import FetchParams
from bearid.sources import SourceError


def files_params(folder: Path, **kw) -> FetchParams:
    return replace(project_params("fetch"), source="files", classes=["grizzly", "black"], files_dir=str(folder), **kw)


def test_files_source_reads_urls_skipping_blanks_comments_and_bad_lines(tmp_path, capsys):
    (tmp_path / "grizzly.txt").write_text(
        "https://a.example/1.jpg\n\n   \n# a comment\n  http://b.example/2.png?w=300&h=200  \n"
        "not-a-url\nftp://c.example/3.jpg\nfile:web/4.png\nhttp://[::1/broken.jpg\nhttps:///nohost.jpg\n"
        "http://x.example/a b.jpg\n")
    (tmp_path / "black.txt").write_text("")
    hits = sources.from_files(files_params(tmp_path))
    assert {c: [h.url for h in lst] for c, lst in hits.items()} == {
        "grizzly": ["https://a.example/1.jpg", "http://b.example/2.png?w=300&h=200", "file:web/4.png"],
        "black": []}
    out = capsys.readouterr().out
    for line, why in [(6, "no scheme"), (7, "scheme 'ftp'"), (9, "unparsable"), (10, "no host"),
                      (11, "whitespace")]:
        assert f"{tmp_path / 'grizzly.txt'}:{line}: " in out and why in out


def test_files_source_missing_class_file_names_the_path(tmp_path):
    (tmp_path / "grizzly.txt").write_text("https://a.example/1.jpg\n")
    with pytest.raises(SourceError) as e:
        sources.from_files(files_params(tmp_path))
    assert str(tmp_path / "black.txt") in str(e.value) and "fetch.files_dir" in str(e.value)


class FakeDDGS:
    """Stands in for ddgs.DDGS: `images(query, max_results=...)`; raises `errors` first, in order."""

    def __init__(self, errors: list[Exception] | None = None, n: int = 3):
        self.errors, self.n, self.calls = list(errors or []), n, []

    def images(self, query: str, **kwargs) -> list[dict]:
        self.calls.append((query, kwargs))
        if self.errors:
            raise self.errors.pop(0)
        slug = query.replace(" ", "_")
        return [{"image": f"https://img.example/{slug}/{i}.jpg", "url": f"https://page.example/{slug}/{i}",
                 "width": 640 + i, "height": "480", "title": f"t{i}", "thumbnail": f"https://t.example/?id={i}"}
                for i in range(self.n)] + [
                {"title": "no image"}, {"image": ""}, {"image": "javascript:alert(1)"},
                {"image": f"https://img.example/{slug}/0.jpg", "width": None}]  # repeated URL


@pytest.fixture
def slept() -> list[float]:
    return []


def ddg_params(**kw) -> FetchParams:
    return replace(project_params("fetch"), **{"source": "ddg", "classes": ["grizzly", "black"], "query": "{cls} bear",
                                                "max_per_class": 7, **kw})


def search(tmp_path: Path, client: FakeDDGS, slept: list[float], **kw) -> dict[str, list[str]]:
    p = ddg_params(**kw)
    hits = sources.from_ddg(p, tmp_path / "search", client, sleep=slept.append)
    return {c: [h.url for h in lst] for c, lst in hits.items()}


def test_ddg_results_become_hits_with_page_and_size(tmp_path, slept):
    client = FakeDDGS()
    urls = sources.fetch(ddg_params(), tmp_path / "urls", tmp_path / "web", tmp_path / "search", client)
    assert client.calls == [("grizzly bear", {"max_results": 7}), ("black bear", {"max_results": 7})]
    assert urls["grizzly"] == [f"https://img.example/grizzly_bear/{i}.jpg" for i in range(3)]
    assert (tmp_path / "urls" / "black.txt").read_text() == "".join(
        f"https://img.example/black_bear/{i}.jpg\n" for i in range(3))
    saved = json.loads((tmp_path / "search" / "grizzly.json").read_text())
    assert saved["source"] == "ddg" and saved["query"] == "grizzly bear" and saved["max_results"] == 7
    assert saved["hits"][1] == {"url": "https://img.example/grizzly_bear/1.jpg", "page": "https://page.example/"
                                "grizzly_bear/1", "width": 641, "height": 480, "title": "t1",
                                "thumbnail": "https://t.example/?id=1"}


def test_saved_search_is_reused_until_query_or_size_changes(tmp_path):
    def fetch(client: FakeDDGS, **kw) -> None:
        sources.fetch(ddg_params(**kw), tmp_path / "urls", tmp_path / "web", tmp_path / "search", client)

    fetch(FakeDDGS())
    again = FakeDDGS()
    fetch(again)
    fetch(again, max_per_class=2)  # fewer than saved: cut the saved list
    assert again.calls == []
    assert (tmp_path / "urls" / "grizzly.txt").read_text().count("\n") == 2
    bigger = FakeDDGS()
    fetch(bigger, max_per_class=9)
    other = FakeDDGS()
    fetch(other, query="{cls} bears", max_per_class=9)
    assert [q for q, _ in bigger.calls] == ["grizzly bear", "black bear"]
    assert [q for q, _ in other.calls] == ["grizzly bears", "black bears"]


@pytest.mark.parametrize("error", [RatelimitException("202 Ratelimit"), TimeoutException("timed out")])
def test_rate_limits_and_timeouts_are_retried_with_growing_waits(tmp_path, slept, error):
    client = FakeDDGS(errors=[error, error])
    urls = search(tmp_path, client, slept, search_retries=4, search_backoff=1.5)
    assert len(set(urls["grizzly"])) == 3
    assert [q for q, _ in client.calls] == ["grizzly bear"] * 3 + ["black bear"]
    assert slept == [1.5, 3.0]


def test_backoff_is_bounded(tmp_path, slept):
    client = FakeDDGS(errors=[RatelimitException("r")] * 19)
    search(tmp_path, client, slept, search_retries=20, search_backoff=10)
    assert slept == [10, 20, 40] + [60] * 16


def test_gives_up_with_a_clear_error(tmp_path, slept):
    client = FakeDDGS(errors=[RatelimitException("202 Ratelimit")] * 10)
    with pytest.raises(SourceError, match=r"fetch\.source=ddg: search for 'grizzly bear' failed after 3 tries "
                                          r"\(RatelimitException: 202 Ratelimit\).*fetch\.source=files"):
        search(tmp_path, client, slept, search_retries=3)
    assert len(client.calls) == 3 and slept == [2.0, 4.0]


def test_no_network_is_a_clear_error_without_retries(tmp_path, slept):
    offline = DDGSException("DNSError: error sending request for url (https://www.bing.com/images/async): "
                            "error resolving DNS")
    client = FakeDDGS(errors=[offline])
    with pytest.raises(SourceError) as e:
        search(tmp_path, client, slept)
    message = str(e.value)
    assert message.startswith("fetch.source=ddg: could not search for 'grizzly bear'")
    assert "DNSError" in message and "network" in message and "fetch.source=files" in message
    assert len(client.calls) == 1 and slept == []


def test_no_results_is_a_clear_error(tmp_path, slept):
    with pytest.raises(SourceError, match=r"no image URLs found for 'grizzly bear'.*fetch\.query"):
        search(tmp_path, FakeDDGS(errors=[DDGSException("No results found.")]), slept)


def test_fetch_deduplicates_caps_and_writes_lists(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "grizzly.txt").write_text("".join(f"https://x.example/{i % 4}.jpg\n" for i in range(10)))
    (lists / "black.txt").write_text("https://y.example/b.jpg\nhttps://y.example/a.jpg\nhttps://y.example/b.jpg\n")
    p = files_params(lists, max_per_class=3)
    out = tmp_path / "urls"
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "teddy.json").write_text("{}")  # a class no longer listed
    urls = sources.fetch(p, out, tmp_path / "web", tmp_path / "search")
    assert urls == {"grizzly": [f"https://x.example/{i}.jpg" for i in range(3)],
                    "black": ["https://y.example/b.jpg", "https://y.example/a.jpg"]}
    assert sources.read_lists(out, p.classes) == urls
    assert (out / "grizzly.txt").read_text() == "".join(u + "\n" for u in urls["grizzly"])
    assert sorted(f.name for f in (tmp_path / "search").iterdir()) == ["black.json", "grizzly.json"]
    assert not list(out.glob(".*"))  # no temp files left


def test_fetch_demo_writes_relative_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = project_params("fetch", classes=["three", "five"], max_per_class=5,
                       demo={"img_size": 8, "per_class": 6, "corrupt_per_kind": 1, "duplicates": 1})
    urls = sources.fetch(p, Path("urls"), Path("web"), Path("search"))
    assert all(len(lst) == 5 for lst in urls.values())
    assert all(u.startswith("file:web/") for lst in urls.values() for u in lst)
    assert sources.read_lists(Path("urls"), p.classes) == urls
