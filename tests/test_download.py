"""download.py: file: and http: URLs through one path, one report row per URL, nothing half-written."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from bearid import download
from bearid.atomic import read_csv


def image_bytes(fmt: str, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format=fmt)
    return buf.getvalue()


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG", (10, 20, 250))
PAGES = {"/bear.png": PNG, "/bear.jpg": JPEG, "/big": b"\x89PNG\r\n\x1a\n" + b"x" * 200_000}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")  # lies: the extension comes from the bytes
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A real HTTP server on 127.0.0.1; yields its base URL."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(urls: dict[str, list[str]], tmp_path: Path, max_bytes: int = 1_000_000) -> list[download.Result]:
    return download.download_all(urls, tmp_path / "raw", tmp_path / "report.csv",
                                 workers=1, timeout=5.0, max_bytes=max_bytes)


def named(data: bytes, ext: str) -> str:
    return hashlib.sha256(data).hexdigest()[:16] + ext


def test_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    web = tmp_path / "web"
    web.mkdir()
    (web / "a.png").write_bytes(PNG)
    (web / "copy.jpg").write_bytes(PNG)  # same bytes, other name and claimed type
    (web / "b.jpeg").write_bytes(JPEG)
    (web / "empty.jpg").write_bytes(b"")
    (web / "page.jpg").write_bytes(b"<html>nope</html>")
    urls = {"grizzly": ["file:web/a.png", "file:web/missing.jpg", "file:web/copy.jpg", "file:web/empty.jpg"],
            "black": [f"file://{(web / 'b.jpeg').as_posix()}", "file:web/page.jpg", "ftp://x.example/a.jpg"]}
    results = fetch(urls, tmp_path)
    got = {(r.url, r.status, r.reason) for r in results}
    assert got == {
        ("file:web/a.png", "ok", ""),
        ("file:web/missing.jpg", "failed", "not found"),
        ("file:web/copy.jpg", "duplicate", "same content as another URL"),
        ("file:web/empty.jpg", "failed", "empty response"),
        (f"file://{(web / 'b.jpeg').as_posix()}", "ok", ""),
        ("file:web/page.jpg", "ok", ""),
        ("ftp://x.example/a.jpg", "failed", "unsupported URL scheme 'ftp'"),
    }
    by_url = {r.url: r for r in results}
    png_path = tmp_path / "raw" / "grizzly" / named(PNG, ".png")
    assert by_url["file:web/a.png"].path == png_path.as_posix() and png_path.read_bytes() == PNG
    assert by_url["file:web/a.png"].bytes == len(PNG)
    assert by_url["file:web/copy.jpg"].path == png_path.as_posix()
    assert Path(by_url[urls["black"][0]].path).name == named(JPEG, ".jpg")
    assert Path(by_url["file:web/page.jpg"].path).name == named(b"<html>nope</html>", ".bin")
    for r in results:
        if r.status == "failed":
            assert r.path == "" and r.bytes == 0
    assert sorted(f.name for f in (tmp_path / "raw").rglob("*")) == sorted(
        ["grizzly", "black", named(PNG, ".png"), named(JPEG, ".jpg"), named(b"<html>nope</html>", ".bin")])


def test_max_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("exact.png").write_bytes(PNG)
    Path("over.jpg").write_bytes(JPEG + b"\0" * 10)
    results = fetch({"c": ["file:exact.png", "file:over.jpg"]}, tmp_path, max_bytes=len(PNG))
    assert [r.status for r in results] == ["ok", "failed"]
    assert results[1].reason == f"larger than download.max_bytes={len(PNG)}"
    assert [f.name for f in (tmp_path / "raw" / "c").iterdir()] == [named(PNG, ".png")]


def test_http_urls(tmp_path, server, closed_port):
    urls = {"grizzly": [f"{server}/bear.png", f"{server}/nothing.png", f"{server}/bear.jpg"],
            "black": [f"http://127.0.0.1:{closed_port}/bear.png", f"{server}/big"]}
    results = fetch(urls, tmp_path, max_bytes=100_000)
    by_url = {r.url: r for r in results}
    ok = by_url[f"{server}/bear.png"]
    assert (ok.status, ok.bytes) == ("ok", len(PNG))
    assert Path(ok.path) == tmp_path / "raw" / "grizzly" / named(PNG, ".png")
    assert Path(ok.path).read_bytes() == PNG
    assert Path(by_url[f"{server}/bear.jpg"].path).name == named(JPEG, ".jpg")
    assert (by_url[f"{server}/nothing.png"].status, by_url[f"{server}/nothing.png"].reason) == ("failed", "http 404")
    refused = by_url[f"http://127.0.0.1:{closed_port}/bear.png"]
    assert refused.status == "failed" and refused.reason.startswith("connection failed: ")
    big = by_url[f"{server}/big"]
    assert big.status == "failed" and "max_bytes" in big.reason
    assert list((tmp_path / "raw" / "black").iterdir()) == []


def test_no_temp_files_left(tmp_path, server, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.png").write_bytes(PNG)
    Path("b.png").write_bytes(PNG)
    Path("big.png").write_bytes(PNG * 100)
    Path("empty.png").write_bytes(b"")
    urls = {"c": ["file:a.png", "file:b.png", "file:big.png", "file:empty.png", "file:gone.png",
                  f"{server}/bear.png", f"{server}/404", f"{server}/big"]}
    results = download.download_all(urls, tmp_path / "raw", tmp_path / "report.csv",
                                    workers=4, timeout=5.0, max_bytes=len(PNG) * 10)
    assert len(results) == 8
    leftovers = [f.name for f in (tmp_path / "raw").rglob("*") if f.name.startswith(".")]
    assert leftovers == []


def test_report_rows_match_results(tmp_path, server, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.png").write_bytes(PNG)
    urls = {"c": ["file:a.png", "file:gone.png", f"{server}/bear.png", f"{server}/404"],
            "d": [f"{server}/bear.jpg"]}
    results = fetch(urls, tmp_path)
    assert [(r.url, r.cls) for r in results] == [(u, c) for c, lst in urls.items() for u in lst]
    rows = read_csv(tmp_path / "report.csv")
    assert list(rows[0]) == download.REPORT_FIELDS
    assert rows == [{k: str(v) for k, v in asdict(r).items()} for r in results]
    assert [r["status"] for r in rows] == ["ok", "failed", "duplicate", "failed", "ok"]


@pytest.mark.parametrize("head, ext", [
    (b"\xff\xd8\xff\xe0", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF89a", ".gif"),
    (b"RIFF\0\0\0\0WEBPVP8 ", ".webp"), (b"BM", ".bmp"), (b"<html>", ".bin"),
])
def test_sniff_ext(head, ext):
    assert download.sniff_ext(head, "https://x.example/a.jpg") == ext


def test_malformed_url_becomes_a_failed_row(tmp_path, monkeypatch):
    """One unparsable URL in a list must not abort the whole download (and lose the report)."""
    monkeypatch.chdir(tmp_path)
    Path("a.png").write_bytes(PNG)
    results = fetch({"c": ["http://[::1/x.jpg", "file:a.png"]}, tmp_path)
    assert [r.status for r in results] == ["failed", "ok"]
    assert len(read_csv(tmp_path / "report.csv")) == 2
