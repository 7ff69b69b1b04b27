"""download.py against a real local HTTP server: every failure kind with its exact reason, resume, kills."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from bearid import download
from bearid.atomic import read_csv
from bearid.params import DownloadParams
from http_fixtures import BIG, HTML, JPEG, PNG, THUMBS, closed_port, serve

ROOT = Path(__file__).resolve().parents[1]
FAST = DownloadParams(workers=8, per_host=8, connect_timeout=1.0, read_timeout=0.5, deadline=1.5, retries=2,
                      backoff=0.05, max_bytes=100_000, max_redirects=3, file_dir=".")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with serve() as s:
        yield s


def run(urls: dict[str, list[str]], tmp_path: Path, p: DownloadParams = FAST) -> list[download.Result]:
    return download.download_all(urls, tmp_path / "raw", tmp_path / "report.csv", p,
                                 metrics=tmp_path / "metrics.json")


def named(data: bytes, ext: str) -> str:
    return hashlib.sha256(data).hexdigest()[:16] + ext


def files(root: Path) -> list[str]:
    return sorted(f.relative_to(root).as_posix() for f in root.rglob("*") if f.is_file())


def test_every_failure_kind_has_its_exact_reason(tmp_path, server):
    s = server.url
    expected = {
        f"{s}/bear.png": ("ok", "ok"),
        f"{s}/nothing.jpg": ("failed", "http_404"),
        f"{s}/flaky": ("ok", "ok"),  # 500, 500, then the image
        f"{s}/limited": ("ok", "ok"),  # 429, then the image
        f"{s}/down": ("failed", "http_503"),
        f"{s}/html-as-jpeg": ("failed", "not_an_image"),
        f"{s}/empty": ("failed", "empty"),
        f"{s}/big": ("failed", "too_large"),
        f"{s}/endless": ("failed", "too_large"),
        f"{s}/redirect": ("ok", "ok"),
        f"{s}/loop": ("failed", "too_many_redirects"),
        f"{s}/to-file": ("failed", "scheme_not_allowed"),
        f"{s}/trickle": ("failed", "deadline"),
        f"{s}/silent": ("failed", "timeout"),
        f"http://127.0.0.1:{closed_port()}/bear.png": ("failed", "connection_error"),
        "http://": ("failed", "invalid_url"),
        "http://[::1/x.jpg": ("failed", "invalid_url"),
        "ftp://x.example/a.jpg": ("failed", "scheme_not_allowed"),
    }
    # Looser than FAST: 18 URLs at once, server and client in one process, on a busy 2-core machine.
    p = replace(FAST, connect_timeout=2.0, read_timeout=1.0, deadline=2.5)
    start = time.monotonic()
    results = run({"bears": list(expected)}, tmp_path, p)
    elapsed = time.monotonic() - start
    assert {r.url: (r.status, r.reason) for r in results} == expected
    assert set(r.reason for r in results) - {"ok"} <= set(download.REASONS) | {"http_404", "http_503"}
    by_url = {r.url: r for r in results}
    assert "HTML page" in by_url[f"{s}/html-as-jpeg"].detail and "image/jpeg" in by_url[f"{s}/html-as-jpeg"].detail
    assert server.hits["/flaky"] == 3 and server.hits["/limited"] == 2
    assert server.hits["/down"] == 1 + FAST.retries and by_url[f"{s}/down"].detail.endswith("3 tries")
    assert server.hits["/nothing.jpg"] == 1 and server.hits["/html-as-jpeg"] == 1  # no retry where none helps
    assert Path(by_url[f"{s}/redirect"].path).read_bytes() == JPEG
    assert elapsed < p.deadline + 3  # the trickle and the silent server do not hold the run
    for r in results:
        assert (r.path != "") == (r.status != "failed")
        assert r.status != "failed" or r.bytes == 0
    assert not [f for f in files(tmp_path / "raw") if "/.part-" in f]


def test_thumbnail_urls_keep_their_query_and_stay_distinct(tmp_path, server):
    urls = [f"{server.url}/thumb?id={i}" for i in THUMBS]
    results = run({"bears": urls}, tmp_path)
    assert [r.status for r in results] == ["ok"] * 3
    assert [Path(r.path).read_bytes() for r in results] == list(THUMBS.values())
    assert len({r.path for r in results}) == 3
    assert all(server.hits[f"/thumb?id={i}"] == 1 for i in THUMBS)


def test_content_type_is_not_trusted_and_extension_comes_from_bytes(tmp_path, server):
    results = run({"c": [f"{server.url}/bear.png", f"{server.url}/bear.jpg"]}, tmp_path)
    assert [Path(r.path).name for r in results] == [named(PNG, ".png"), named(JPEG, ".jpg")]
    assert [r.bytes for r in results] == [len(PNG), len(JPEG)]


def test_same_bytes_are_one_file_per_class(tmp_path, server):
    urls = {"a": [f"{server.url}/bear.png", f"{server.url}/copy.png"], "b": [f"{server.url}/copy.png"]}
    results = run(urls, tmp_path, replace(FAST, workers=1))
    assert [(r.cls, r.status, r.reason) for r in results] == [
        ("a", "ok", "ok"), ("a", "duplicate", "duplicate"), ("b", "ok", "ok")]
    assert results[0].path == results[1].path
    assert files(tmp_path / "raw") == [".journal.jsonl", f"a/{named(PNG, '.png')}", f"b/{named(PNG, '.png')}"]


def test_file_urls_only_inside_file_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    web = tmp_path / "web"
    web.mkdir()
    (web / "a.png").write_bytes(PNG)
    (web / "empty.jpg").write_bytes(b"")
    (web / "page.jpg").write_bytes(HTML)
    urls = {"c": ["file:web/a.png", "file:web/missing.jpg", "file:web/empty.jpg", "file:web/page.jpg",
                  f"file://{(web / 'a.png').as_posix()}", "file:web"]}
    got = [(r.status, r.reason) for r in run(urls, tmp_path)]
    assert got == [("ok", "ok"), ("failed", "file_not_found"), ("failed", "empty"), ("failed", "not_an_image"),
                   ("duplicate", "duplicate"), ("failed", "file_unreadable")]
    closed = run(urls, tmp_path / "closed", replace(FAST, file_dir=""))
    assert {(r.status, r.reason) for r in closed} == {("failed", "scheme_not_allowed")}
    assert "download.file_dir" in closed[0].detail
    elsewhere = run(urls, tmp_path / "elsewhere", replace(FAST, file_dir="other"))
    assert {(r.status, r.reason) for r in elsewhere} == {("failed", "outside_file_dir")}


def test_max_bytes_is_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("exact.png").write_bytes(PNG)
    Path("over.png").write_bytes(PNG + b"\0")
    results = run({"c": ["file:exact.png", "file:over.png"]}, tmp_path, replace(FAST, max_bytes=len(PNG)))
    assert [(r.status, r.reason) for r in results] == [("ok", "ok"), ("failed", "too_large")]


def test_report_and_metrics(tmp_path, server):
    urls = {"c": [f"{server.url}/bear.png", f"{server.url}/404", f"{server.url}/html-as-jpeg"],
            "d": [f"{server.url}/bear.jpg"]}
    results = run(urls, tmp_path)
    assert [(r.url, r.cls) for r in results] == [(u, c) for c, lst in urls.items() for u in lst]
    rows = read_csv(tmp_path / "report.csv")
    assert list(rows[0]) == download.REPORT_FIELDS
    assert rows == [{k: str(v) for k, v in asdict(r).items()} for r in results]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {
        "c": {"attempted": 3, "ok": 1, "duplicate": 0, "failed": 2,
              "failed_by_reason": {"http_404": 1, "not_an_image": 1}},
        "d": {"attempted": 1, "ok": 1, "duplicate": 0, "failed": 0, "failed_by_reason": {}}}


def test_rerun_fetches_only_what_is_missing(tmp_path, server):
    s = server.url
    first = run({"a": [f"{s}/bear.png", f"{s}/404", f"{s}/img/1.png"], "gone": [f"{s}/img/2.png"]}, tmp_path)
    assert [r.status for r in first] == ["ok", "failed", "ok", "ok"]
    second = run({"a": [f"{s}/bear.png", f"{s}/404", f"{s}/img/3.png"]}, tmp_path)
    assert [asdict(r) for r in second[:2]] == [asdict(r) for r in first[:2]]
    assert server.hits["/bear.png"] == 1  # done: not fetched again
    assert server.hits["/404"] == 2  # failed: tried again
    assert files(tmp_path / "raw") == sorted([".journal.jsonl", Path(second[0].path).relative_to(tmp_path / "raw")
                                              .as_posix(), Path(second[2].path).relative_to(tmp_path / "raw")
                                              .as_posix()])  # files of URLs no longer listed are gone
    (tmp_path / "raw" / Path(second[0].path).relative_to(tmp_path / "raw")).unlink()
    run({"a": [f"{s}/bear.png"]}, tmp_path)
    assert server.hits["/bear.png"] == 2  # its file was deleted: fetched again


def test_per_host_cap_and_round_robin(tmp_path, monkeypatch):
    jobs = [(i, f"http://{h}/{i}", "c") for i, h in enumerate(["a"] * 4 + ["b"] * 2 + ["c"])]
    assert [j[1] for j in download.interleave(jobs)] == [
        "http://a/0", "http://b/4", "http://c/6", "http://a/1", "http://b/5", "http://a/2", "http://a/3"]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with serve(delay=0.2) as slow:
        start = time.monotonic()
        run({"c": [f"{slow.url}/img/{i}.png" for i in range(4)]}, tmp_path, replace(FAST, workers=4, per_host=1))
        assert time.monotonic() - start >= 0.8  # one at a time, though four workers were free


def test_connections_are_kept_alive_and_capped_per_host(tmp_path, monkeypatch):
    """One pool for all threads: a host gets at most per_host connections, each reused for many URLs."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with serve(delay=0.02) as web:
        results = run({"c": [f"{web.url}/img/{i}.png" for i in range(24)]}, tmp_path,
                      replace(FAST, workers=8, per_host=2))
        assert [r.status for r in results] == ["ok"] * 24
        assert web.connections <= 2
        assert {h.get("Accept-Encoding") for h in web.headers} == {"identity"}  # the bytes are the file's own
        assert {h.get("User-Agent") for h in web.headers} == {download.USER_AGENT}


def test_the_first_url_in_list_order_is_ok_whichever_thread_finished_first():
    a = download.Result("u1", "c", "duplicate", "duplicate", "", 5, "raw/c/x.png")
    b = download.Result("u2", "c", "ok", "ok", "", 5, "raw/c/x.png")
    c = download.Result("u3", "c", "failed", "http_404")
    d = download.Result("u4", "d", "duplicate", "duplicate", "", 5, "raw/d/x.png")  # other class: its own file
    download.first_is_ok([a, b, c, d])
    assert [(r.status, r.reason) for r in (a, b, c, d)] == [
        ("ok", "ok"), ("duplicate", "duplicate"), ("failed", "http_404"), ("ok", "ok")]


def test_report_rows_are_plain_dicts_in_field_order():
    r = download.Result("u", "c", "ok", "ok", "", 3, "p")
    assert download.row(r) == asdict(r) and list(download.row(r)) == download.REPORT_FIELDS


KILLED_RUN = """
import sys
from pathlib import Path
from bearid.download import download_all
from bearid.params import DownloadParams
urls = {"c": [f"%s/img/{i}.png" for i in range(40)]}
download_all(urls, Path("raw"), Path("report.csv"), DownloadParams(workers=2, per_host=2, connect_timeout=5.0, read_timeout=10.0,
                                                             deadline=15.0, retries=2, backoff=0.5, max_bytes=20000000,
                                                             max_redirects=5, file_dir=""))
"""


def test_kill_then_resume(tmp_path, monkeypatch):
    """SIGKILL mid-run leaves only complete files; the rerun fetches only what was not finished."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    with serve(delay=0.1) as slow:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN % slow.url], env=env)
        journal = tmp_path / "raw" / download.JOURNAL
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 6):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (tmp_path / "report.csv").exists()
        for f in (tmp_path / "raw" / "c").iterdir():
            if not f.name.startswith("."):
                assert named(f.read_bytes(), f.suffix) == f.name  # complete, never half a file
        finished = {json.loads(line)["url"] for line in journal.read_text().splitlines() if line.endswith("}")}
        assert 6 <= len(finished) < 40
        before = dict(slow.hits)
        results = download.download_all({"c": [f"{slow.url}/img/{i}.png" for i in range(40)]}, Path("raw"),
                                        Path("report.csv"), replace(FAST, deadline=10))
        assert [r.status for r in results] == ["ok"] * 40
        for url in finished:
            path = url.removeprefix(slow.url)
            assert slow.hits[path] == before[path] == 1  # not fetched again
    assert not [f for f in (tmp_path / "raw" / "c").iterdir() if f.name.startswith(".")]
    assert len(list((tmp_path / "raw" / "c").iterdir())) == 40


@pytest.mark.parametrize("head, ext", [
    (b"\xff\xd8\xff\xe0", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF89a", ".gif"),
    (b"RIFF\0\0\0\0WEBPVP8 ", ".webp"), (b"BM", ".bmp"), (b"\0\0\0\x1cftypavif", ".avif"), (b"<html>", ""),
    (BIG[:4], ""),
])
def test_sniff_ext(head, ext):
    assert download.sniff_ext(head) == ext
