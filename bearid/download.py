"""Download every URL to a file named by its content hash, with a report row per URL.

Real image-search URLs are hostile: dead links, HTML error pages sent as
image/jpeg, servers that trickle or never stop, rate limits. So each URL is
downloaded exactly as given (query string kept: thumbnail URLs are nothing but a
query), under a per-host concurrency cap, with connect / read timeouts and a total
deadline, a byte cap checked while streaming, a sniff of the first bytes, and
retries only where a retry can help (429, 5xx, connection errors). Nothing here
raises for a bad URL: each one ends as a report row whose reason is one of
`REASONS`.

A URL list may come from the web, so nothing in it may reach beyond the images:
`file:` URLs are read only inside `download.file_dir` (the demo's web folder by
default) and only when they name a regular file; credentials in a URL are dropped
before it is used or written anywhere; a report never holds a byte of a file
that is not an image.

Reruns resume: every finished URL is appended to a journal beside the files, and a
URL whose file is still there is not downloaded again. Files are written under a
temp name and linked into place, so a killed run leaves no partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import SplitResult, unquote, urlsplit

import requests
import urllib3

from . import __version__
from .atomic import TempFile, atomic_write_text, write_csv, write_json
from .images import SNIFF_BYTES, sniff_ext
from .params import DownloadParams
from .progress import log, track
from .sources import url_problem, without_credentials

REPORT_FIELDS = ["url", "cls", "status", "reason", "detail", "bytes", "path"]
JOURNAL = ".journal.jsonl"
PART_PREFIX = ".part-"
CHUNK = 1 << 18  # bytes per read: an image is a few reads, not dozens
USER_AGENT = f"bearid/{__version__} (image dataset builder; +https://github.com/fastai/course22 lesson 2)"
REASONS = {
    "ok": "downloaded",
    "duplicate": "same bytes as another URL of the class; the report points at that file",
    "invalid_url": "not a URL that can be downloaded (no scheme or host, whitespace, bad port)",
    "scheme_not_allowed": "not http(s), or file: while download.file_dir is empty",
    "outside_file_dir": "a file: URL naming a file outside download.file_dir",
    "file_not_found": "a file: URL whose file does not exist",
    "file_unreadable": "a file: URL that cannot be read (a folder, a pipe or device, no permission)",
    "http_NNN": "the server answered with status NNN (e.g. http_404, http_503 after the retries)",
    "timeout": "no connection, or no bytes, within download.connect_timeout / read_timeout",
    "deadline": "not finished within download.deadline seconds (a trickling server)",
    "connection_error": "refused, reset or DNS failure, after the retries",
    "too_many_redirects": "more than download.max_redirects redirects (or a loop)",
    "too_large": "more than download.max_bytes bytes: the transfer was stopped there",
    "not_an_image": "the first bytes are no image format (e.g. an HTML page), whatever the Content-Type",
    "empty": "a response with no bytes",
}


class DownloadError(Exception):
    """A URL that gave no file: `reason` from REASONS, `detail` for people."""

    def __init__(self, reason: str, detail: str = "", retry: bool = False):
        super().__init__(reason, detail)
        self.reason, self.detail, self.retry = reason, detail, retry


@dataclass
class Result:
    url: str
    cls: str
    status: str  # ok | duplicate | failed
    reason: str = ""  # a key of REASONS (http_NNN with the status code)
    detail: str = ""
    bytes: int = 0
    path: str = ""


def image_ext(head: bytes, content_type: str) -> str:
    """The file extension the first bytes show; DownloadError(not_an_image) when they show none.

    The detail says what the bytes look like, never what they are: a report must
    not carry a piece of a file that was no image.
    """
    ext = sniff_ext(head)
    if ext:
        return ext
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        kind = "an HTML page"
    elif text.startswith((b"<?xml", b"<svg")):
        kind = "XML or SVG"
    else:
        kind = "no known image signature"
    raise DownloadError("not_an_image", f"{kind} (Content-Type {content_type or 'none'})")


@dataclass
class Body:
    """An open response: what the server says it is, and its bytes as they arrive."""
    content_type: str
    chunks: Iterator[bytes]


@dataclass
class Downloader:
    """Everything one download run shares between its threads."""
    p: DownloadParams
    out_dir: Path

    def __post_init__(self) -> None:
        self._slots: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(self.p.per_host))
        self._slots_lock = threading.Lock()
        self._session = self.new_session()
        self._file_root = Path(self.p.file_dir).resolve() if self.p.file_dir else None

    def new_session(self) -> requests.Session:
        """One session for all threads: a keep-alive pool of up to per_host connections per host.

        Any thread reuses any idle connection to a host, so a host is connected to
        at most per_host times (the slots cap the requests in flight at that), not
        once per thread. urllib3's pools are thread-safe; nothing else of the
        session changes after this.
        """
        s = requests.Session()
        # identity: the bytes sniffed, hashed and capped are the file's own, never a gzip stream
        s.headers.update({"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5", "Accept-Encoding": "identity"})
        s.max_redirects = self.p.max_redirects
        for scheme in ("http://", "https://"):
            s.mount(scheme, requests.adapters.HTTPAdapter(pool_connections=256, pool_maxsize=self.p.per_host,
                                                          max_retries=0))
        return s

    def slot(self, host: str) -> threading.Semaphore:
        with self._slots_lock:
            return self._slots[host]

    def download(self, url: str, cls: str) -> Result:
        """Download one URL into out_dir/cls/<sha256[:16]><ext>, retrying what a retry can fix."""
        url = without_credentials(url)
        problem = url_problem(url, ("http", "https", "file") if self._file_root else ("http", "https"))
        if problem:
            if not problem.startswith("scheme "):
                return Result(url, cls, "failed", "invalid_url", problem)
            if url.startswith("file:"):
                problem += " (set download.file_dir to the folder of your local images)"
            return Result(url, cls, "failed", "scheme_not_allowed", problem)
        parts = urlsplit(url)
        end = time.monotonic() + self.p.deadline
        for attempt in range(self.p.retries + 1):
            try:
                if parts.scheme == "file":
                    return self.save(url, cls, self.read_file(parts, end))
                with self.slot(parts.hostname or ""):
                    return self.save(url, cls, self.read_http(url, end))
            except DownloadError as e:
                wait = self.p.backoff * 2 ** attempt
                if not e.retry or attempt == self.p.retries or time.monotonic() + wait >= end:
                    detail = f"{e.detail}; {attempt + 1} tries" if attempt else e.detail
                    return Result(url, cls, "failed", e.reason, detail)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def local_path(self, parts: SplitResult) -> Path:
        """The file a file: URL names, if it lies inside download.file_dir after resolving links."""
        path = Path(unquote(parts.path if not parts.netloc else f"//{parts.netloc}{parts.path}"))
        assert self._file_root is not None
        if not path.resolve().is_relative_to(self._file_root):
            raise DownloadError("outside_file_dir", f"{path} is not inside download.file_dir={self.p.file_dir!r}")
        return path

    @contextmanager
    def read_file(self, parts: SplitResult, end: float) -> Iterator[Body]:
        """A regular file's bytes; a pipe or device is refused before a byte is read (it could block)."""
        path = self.local_path(parts)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise DownloadError("file_not_found", str(path)) from None
        except OSError as e:
            raise DownloadError("file_unreadable", f"{path}: {e.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise DownloadError("file_unreadable", f"{path}: not a regular file")
        with open(fd, "rb") as f:
            yield Body("", self._file_chunks(f, end))

    def _file_chunks(self, f, end: float) -> Iterator[bytes]:
        while chunk := f.read(CHUNK):
            if time.monotonic() > end:
                raise DownloadError("deadline", f"not finished after download.deadline={self.p.deadline:g} s")
            yield chunk

    @contextmanager
    def read_http(self, url: str, end: float) -> Iterator[Body]:
        timeout = (self.p.connect_timeout, min(self.p.read_timeout, max(0.01, end - time.monotonic())))
        try:
            r = self._session.get(url, stream=True, timeout=timeout)
        except requests.TooManyRedirects:
            raise DownloadError("too_many_redirects", f"more than {self.p.max_redirects}") from None
        except (requests.ConnectTimeout, requests.ReadTimeout) as e:
            raise DownloadError("timeout", type(e).__name__) from None
        except requests.exceptions.InvalidSchema:
            raise DownloadError("scheme_not_allowed", "redirected to a scheme other than http(s)") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as e:
            raise DownloadError("invalid_url", type(e).__name__) from None
        except requests.RequestException as e:
            raise DownloadError("connection_error", type(e).__name__, retry=True) from None
        with r:
            if r.status_code != 200:
                retry = r.status_code == 429 or r.status_code >= 500
                raise DownloadError(f"http_{r.status_code}", r.reason or "", retry=retry)
            yield Body(r.headers.get("Content-Type", ""), self._body(r, end))

    def _body(self, r: requests.Response, end: float) -> Iterator[bytes]:
        """The response body as it arrives; each read waits at most until the deadline."""
        raw = r.raw
        deadline = DownloadError("deadline", f"not finished after download.deadline={self.p.deadline:g} s")
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise deadline
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(min(self.p.read_timeout, left))
            try:
                chunk = raw.read1(CHUNK)
            except urllib3.exceptions.ReadTimeoutError:
                if end - time.monotonic() <= 0.05:
                    raise deadline from None
                raise DownloadError("timeout", f"no bytes for download.read_timeout={self.p.read_timeout:g} s") \
                    from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise DownloadError("connection_error", f"while reading: {type(e).__name__}", retry=True) from None
            if not chunk:
                return
            yield chunk

    def save(self, url: str, cls: str, source: AbstractContextManager[Body]) -> Result:
        """Stream into a temp file while hashing, capping and sniffing; then name it by its hash.

        The name is given with a link, which fails when another URL already gave
        the same bytes: that URL's result is then `duplicate`.
        """
        folder = self.out_dir / cls
        with TempFile(folder, PART_PREFIX, fsync=False) as tmp, source as body:
            digest, size, head = hashlib.sha256(), 0, b""
            for chunk in body.chunks:
                size += len(chunk)
                if size > self.p.max_bytes:
                    raise DownloadError("too_large", f"more than download.max_bytes={self.p.max_bytes}")
                if len(head) < SNIFF_BYTES:
                    head += chunk[:SNIFF_BYTES - len(head)]
                    if len(head) == SNIFF_BYTES:
                        image_ext(head, body.content_type)  # an HTML page stops here, not at max_bytes
                digest.update(chunk)
                tmp.file.write(chunk)
            if size == 0:
                raise DownloadError("empty", "no bytes")
            final = folder / (digest.hexdigest()[:16] + image_ext(head, body.content_type))
            try:
                tmp.publish(final, overwrite=False)
            except FileExistsError:
                return Result(url, cls, "duplicate", "duplicate", "", size, final.as_posix())
            return Result(url, cls, "ok", "ok", "", size, final.as_posix())


def row(r: Result) -> dict:
    """A Result as a dict in field order; dataclasses.asdict deep-copies, and costs more than a download."""
    return dict(vars(r))


def interleave(jobs: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Round-robin over hosts, so that the per-host cap does not idle the other workers."""
    by_host: dict[str, list] = defaultdict(list)
    for job in jobs:
        try:
            host = urlsplit(job[1]).hostname or ""
        except ValueError:
            host = ""
        by_host[host].append(job)
    queues = list(by_host.values())
    out = []
    for i in range(max((len(q) for q in queues), default=0)):
        out += [q[i] for q in queues if i < len(q)]
    return out


def read_journal(path: Path) -> dict[tuple[str, str], Result]:
    """URLs a previous run finished (ok or duplicate) whose file is still there."""
    done: dict[tuple[str, str], Result] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        try:
            r = Result(**json.loads(line))
        except (ValueError, TypeError):
            continue  # a line cut off by a kill
        if r.status in ("ok", "duplicate") and Path(r.path).is_file():
            done[(r.url, r.cls)] = r
        else:
            done.pop((r.url, r.cls), None)
    return done


def tidy(out_dir: Path, classes: list[str], keep: set[str]) -> None:
    """Remove temp files of killed runs and files no current URL gave (the URL lists changed)."""
    for d in out_dir.iterdir() if out_dir.is_dir() else []:
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.is_file() and (f.name.startswith(PART_PREFIX) or d.name not in classes or f.as_posix() not in keep):
                f.unlink()
        if d.name not in classes and not any(d.iterdir()):
            d.rmdir()


def summary(results: list[Result]) -> dict:
    """Counts per class, for `dvc metrics show`."""
    out: dict = {}
    for cls in dict.fromkeys(r.cls for r in results):
        rows = [r for r in results if r.cls == cls]
        counts = Counter(r.status for r in rows)
        out[cls] = {"attempted": len(rows), "ok": counts["ok"], "duplicate": counts["duplicate"],
                    "failed": counts["failed"],
                    "failed_by_reason": dict(sorted(Counter(r.reason for r in rows if r.status == "failed").items()))}
    return out


def first_is_ok(results: list[Result]) -> list[Result]:
    """Of URLs that gave the same file, the first in list order is `ok`, the others `duplicate`.

    Threads finish in any order; the report should not depend on which won the race.
    """
    first: set[str] = set()
    for r in results:
        if r.status in ("ok", "duplicate"):
            r.status = r.reason = "duplicate" if r.path in first else "ok"
            first.add(r.path)
    return results


def download_all(url_lists: dict[str, list[str]], out_dir: Path, report: Path, p: DownloadParams,
                 metrics: Path | None = None) -> list[Result]:
    """Download every URL concurrently, resuming a previous run; write the report (and metrics)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    journal_path = out_dir / JOURNAL
    jobs = [(i, without_credentials(url), cls)
            for i, (cls, url) in enumerate((c, u) for c, us in url_lists.items() for u in us)]
    previous = read_journal(journal_path)
    results: list[Result | None] = [previous.get((url, cls)) for _, url, cls in jobs]
    tidy(out_dir, list(url_lists), {r.path for r in results if r})
    todo = interleave([job for job in jobs if results[job[0]] is None])
    atomic_write_text(journal_path, "".join(json.dumps(row(r)) + "\n" for r in results if r))
    if len(todo) < len(jobs):
        log("download", f"{len(jobs) - len(todo)} URLs already downloaded by an earlier run")
    downloader = Downloader(p, out_dir)
    with open(journal_path, "a", encoding="utf-8") as journal, ThreadPoolExecutor(p.workers) as pool:
        futures = {pool.submit(downloader.download, url, cls): i for i, url, cls in todo}
        for fut in track(as_completed(futures), len(futures), "download", "URLs"):
            r = results[futures[fut]] = fut.result()
            journal.write(json.dumps(row(r)) + "\n")
            journal.flush()  # a killed run keeps what it finished
    done = first_is_ok([r for r in results if r is not None])
    atomic_write_text(journal_path, "".join(json.dumps(row(r)) + "\n" for r in done))  # in list order
    write_csv(report, (row(r) for r in done), REPORT_FIELDS)
    if metrics is not None:
        write_json(metrics, summary(done))
    return done
