"""Fetch every URL to a file named by its content hash, with a report per URL.

http(s) and file URLs go through the same path: open a byte stream, copy it
with a size cap into a temp file while hashing, rename it into place. Nothing
here raises for a bad URL: each one ends as a report row.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Iterator
from urllib.parse import unquote, urlparse

import requests

from .atomic import write_csv
from .progress import track

REPORT_FIELDS = ["url", "cls", "status", "reason", "bytes", "path"]
CHUNK = 1 << 16
USER_AGENT = "bearid/0.1 (image dataset builder)"
SIGNATURES = [(b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"),
              (b"GIF89a", ".gif"), (b"BM", ".bmp"), (b"II*\0", ".tif"), (b"MM\0*", ".tif")]


class FetchError(Exception):
    """A URL that gave no file; the message is the report's reason."""


@dataclass
class Result:
    url: str
    cls: str
    status: str  # ok | duplicate | failed
    reason: str = ""
    bytes: int = 0
    path: str = ""


def sniff_ext(head: bytes, url: str) -> str:
    """File extension from the first bytes, not from what the server claims."""
    for magic, ext in SIGNATURES:
        if head.startswith(magic):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return ".bin"


@contextlib.contextmanager
def open_url(url: str, timeout: float, session: requests.Session) -> Iterator[Iterator[bytes]]:
    try:
        parts = urlparse(url)
    except ValueError as e:
        raise FetchError(f"invalid URL: {e}") from None
    if parts.scheme == "file":
        path = Path(unquote(parts.path if not parts.netloc else f"//{parts.netloc}{parts.path}"))
        try:
            f: IO[bytes] = open(path, "rb")
        except FileNotFoundError:
            raise FetchError("not found") from None
        except OSError as e:
            raise FetchError(f"unreadable: {e.strerror}") from None
        with f:
            yield iter(lambda: f.read(CHUNK), b"")
    elif parts.scheme in ("http", "https"):
        try:
            r = session.get(url, stream=True, timeout=(timeout, timeout))
        except requests.RequestException as e:
            raise FetchError(f"connection failed: {type(e).__name__}") from None
        with r:
            if r.status_code != 200:
                raise FetchError(f"http {r.status_code}")
            yield r.iter_content(CHUNK)
    else:
        raise FetchError(f"unsupported URL scheme {parts.scheme!r}")


def fetch_one(url: str, cls: str, out_dir: Path, timeout: float, max_bytes: int,
              session: requests.Session) -> Result:
    """Download one URL into out_dir/cls/<sha256[:16]><ext>, atomically."""
    class_dir = out_dir / cls
    class_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=class_dir, prefix=".part-")
    try:
        digest, size, head = hashlib.sha256(), 0, b""
        with os.fdopen(fd, "wb") as f, open_url(url, timeout, session) as chunks:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"larger than download.max_bytes={max_bytes}")
                if len(head) < 16:
                    head += chunk[:16]
                digest.update(chunk)
                f.write(chunk)
        if size == 0:
            raise FetchError("empty response")
        final = class_dir / (digest.hexdigest()[:16] + sniff_ext(head, url))
        try:
            os.link(tmp, final)  # atomic: fails if another URL already gave this content
        except FileExistsError:
            return Result(url, cls, "duplicate", "same content as another URL", size, final.as_posix())
        return Result(url, cls, "ok", "", size, final.as_posix())
    except FetchError as e:
        return Result(url, cls, "failed", str(e))
    except requests.RequestException as e:
        return Result(url, cls, "failed", f"connection failed: {type(e).__name__}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def download_all(url_lists: dict[str, list[str]], out_dir: Path, report: Path,
                 workers: int, timeout: float, max_bytes: int) -> list[Result]:
    """Download every URL concurrently; write the per-URL report; return its rows."""
    jobs = [(url, cls) for cls, urls in url_lists.items() for url in urls]
    out_dir.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session, ThreadPoolExecutor(workers) as pool:
        session.headers["User-Agent"] = USER_AGENT
        futures = pool.map(lambda job: fetch_one(*job, out_dir, timeout, max_bytes, session), jobs)
        results = list(track(futures, len(jobs), "download", "URLs"))
    write_csv(report, (asdict(r) for r in results), REPORT_FIELDS)
    return results
