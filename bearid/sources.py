"""Where image URLs come from: the offline demo, hand-made lists, or DuckDuckGo.

Every source yields, per class, a list of `Hit`s (the image URL plus what the
search knew about it). `fetch` de-duplicates them in a stable order, caps them at
`max_per_class`, writes the URL list the downloader reads and saves the hits, so
that a rerun reuses a search whose query and size did not change.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit, urlunsplit

from . import demo
from .atomic import atomic_write_text, write_json
from .errors import SourceError
from .params import FetchParams
from .progress import log

FILE_SCHEMES = ("http", "https", "file")
MAX_BACKOFF = 60.0


class ImageSearch(Protocol):
    """The part of `ddgs.DDGS` this module uses; tests pass a fake."""

    def images(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


@dataclass
class Hit:
    """One image a source offers: the URL to download, and where it was found."""
    url: str
    page: str = ""  # the web page showing the image
    width: int = 0  # as the search engine reports it; 0 when unknown
    height: int = 0
    title: str = ""
    thumbnail: str = ""


def url_problem(url: str, schemes: tuple[str, ...]) -> str:
    """Why `url` cannot be downloaded, or "" when it looks fine."""
    if any(c.isspace() for c in url):
        return "contains whitespace"
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a bad port
    except ValueError as e:
        return f"unparsable ({e})"
    if parts.scheme not in schemes:
        return f"scheme {parts.scheme!r} is not one of {list(schemes)}" if parts.scheme else "no scheme"
    if parts.scheme != "file" and not parts.hostname:
        return "no host"
    return ""


def without_credentials(url: str) -> str:
    """`url` with any user:password@ removed: a list may carry them, no report or cache may."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def from_demo(p: FetchParams, web_dir: Path) -> dict[str, list[Hit]]:
    return {cls: [Hit(u) for u in urls] for cls, urls in demo.build_web(p.classes, p.demo, web_dir).items()}


def from_files(p: FetchParams) -> dict[str, list[Hit]]:
    """The lesson's browser-console way: one `<class>.txt` of URLs per class.

    Blank lines and `#` comments are ignored; an unusable line is skipped and
    logged as `file:line: reason`, so one typo does not cost the whole list.
    """
    folder = Path(p.files_dir)
    hits: dict[str, list[Hit]] = {}
    for cls in p.classes:
        path = folder / f"{cls}.txt"
        if not path.is_file():
            raise SourceError(f"fetch.source=files: {path} not found; write one URL per line "
                              f"for class {cls!r} there (fetch.files_dir={p.files_dir!r})")
        hits[cls] = []
        for n, raw in enumerate(path.read_bytes().splitlines(), 1):
            try:
                url = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                log("fetch_urls", f"skipped {path}:{n}: byte 0x{raw[e.start]:02x} is not UTF-8")
                continue
            if not url or url.startswith("#"):
                continue
            problem = url_problem(url, FILE_SCHEMES)
            if problem:
                log("fetch_urls", f"skipped {path}:{n}: {without_credentials(url)[:200]!r}: {problem}")
                continue
            if without_credentials(url) != url:
                log("fetch_urls", f"{path}:{n}: user name and password removed from the URL; "
                                  "they are never stored or sent")
            hits[cls].append(Hit(without_credentials(url)))
    return hits


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _hit(result: dict[str, Any]) -> Hit | None:
    url = without_credentials(str(result.get("image") or ""))
    if url_problem(url, ("http", "https")):
        return None
    return Hit(url, str(result.get("url") or ""), _int(result.get("width")), _int(result.get("height")),
               str(result.get("title") or ""), str(result.get("thumbnail") or ""))


def default_client() -> ImageSearch:
    try:
        from ddgs import DDGS
    except ImportError as e:
        raise SourceError("fetch.source=ddg needs the `ddgs` package: pip install ddgs") from e
    return DDGS(timeout=10)


def search_ddg(client: ImageSearch, query: str, max_results: int, retries: int, backoff: float,
               sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """One image search; rate limits and timeouts are retried with doubling waits, then fail clearly."""
    from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

    for attempt in range(1, retries + 1):
        try:
            return client.images(query, max_results=max_results)
        except (RatelimitException, TimeoutException) as e:
            if attempt == retries:
                raise SourceError(
                    f"fetch.source=ddg: search for {query!r} failed after {retries} tries "
                    f"({type(e).__name__}: {e}); DuckDuckGo is limiting this machine: wait a few minutes "
                    "and rerun, or raise fetch.search_backoff, or use fetch.source=files") from e
            wait = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            log("fetch_urls", f"{query!r}: {type(e).__name__}, retry {attempt}/{retries - 1} in {wait:g} s")
            sleep(wait)
        except DDGSException as e:
            if "no results" in str(e).lower():
                return []
            raise SourceError(
                f"fetch.source=ddg: could not search for {query!r} ({type(e).__name__}: {e}); "
                "this needs a network connection to DuckDuckGo (set DDGS_PROXY for a proxy); offline, "
                "use fetch.source=files with URL lists made in a browser, or fetch.source=demo") from e
    raise AssertionError("unreachable")


def _cached(path: Path, query: str, max_results: int) -> list[dict] | None:
    """The saved hits of the same search, or None when there is none to reuse."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if saved.get("source") == "ddg" and saved.get("query") == query and saved.get("max_results", 0) >= max_results:
        return saved["hits"]
    return None


def from_ddg(p: FetchParams, search_dir: Path, client: ImageSearch | None = None,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, list[Hit]]:
    """DuckDuckGo image search through `ddgs`, one query per class from `fetch.query`."""
    hits: dict[str, list[Hit]] = {}
    for cls in p.classes:
        query = p.query.format(cls=cls)
        cached = _cached(search_dir / f"{cls}.json", query, p.max_per_class)
        if cached is not None:
            hits[cls] = [Hit(**h) for h in cached]
            log("fetch_urls", f"{cls}: reusing the saved search for {query!r}")
            continue
        client = client or default_client()
        results = search_ddg(client, query, p.max_per_class, p.search_retries, p.search_backoff, sleep)
        hits[cls] = [h for h in map(_hit, results) if h is not None]
        if not hits[cls]:
            raise SourceError(f"fetch.source=ddg: no image URLs found for {query!r}; "
                              "change fetch.query (e.g. '{cls} bear') or the class name")
    return hits


def unique(hits: list[Hit], limit: int) -> list[Hit]:
    """First hit of each URL, in the order given, at most `limit`."""
    seen: set[str] = set()
    out = []
    for h in hits:
        if h.url not in seen and len(out) < limit:
            seen.add(h.url)
            out.append(h)
    return out


def fetch(p: FetchParams, out_dir: Path, web_dir: Path, search_dir: Path,
          client: ImageSearch | None = None) -> dict[str, list[str]]:
    """Collect URLs from the configured source; write one list and one hits file per class."""
    web_dir.mkdir(parents=True, exist_ok=True)
    if p.source == "demo":
        raw = from_demo(p, web_dir)
    elif p.source == "files":
        raw = from_files(p)
    else:
        raw = from_ddg(p, search_dir, client)
    out_dir.mkdir(parents=True, exist_ok=True)
    search_dir.mkdir(parents=True, exist_ok=True)
    for stale in search_dir.glob("*.json"):
        if stale.stem not in p.classes:
            stale.unlink()
    urls = {}
    for cls in p.classes:
        hits = unique(raw[cls], p.max_per_class)
        urls[cls] = [h.url for h in hits]
        atomic_write_text(out_dir / f"{cls}.txt", "".join(u + "\n" for u in urls[cls]))
        write_json(search_dir / f"{cls}.json", {
            "source": p.source, "query": p.query.format(cls=cls) if p.source == "ddg" else "",
            "max_results": p.max_per_class, "hits": [asdict(h) for h in hits]})
        log("fetch_urls", f"{cls}: {len(hits)} URLs")
    return urls


def read_lists(url_dir: Path, classes: list[str]) -> dict[str, list[str]]:
    lists = {}
    for cls in classes:
        path = url_dir / f"{cls}.txt"
        lists[cls] = [u.strip() for u in path.read_text(encoding="utf-8").splitlines() if u.strip()]
    return lists
