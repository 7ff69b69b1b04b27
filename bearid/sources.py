"""Where image URLs come from: the offline demo, hand-made lists, or DuckDuckGo.

Every source returns {class: [url, ...]}, de-duplicated in a stable order and
capped at `max_per_class`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from . import demo
from .atomic import atomic_write_text
from .params import FetchParams
from .progress import log

SCHEMES = ("http", "https", "file")


class SourceError(RuntimeError):
    """A source could not produce URLs; the message says which and what to do."""


def from_demo(p: FetchParams, web_dir: Path) -> dict[str, list[str]]:
    return demo.build_web(p.classes, p.demo, web_dir)


def from_files(p: FetchParams) -> dict[str, list[str]]:
    """The lesson's browser-console way: one `<class>.txt` of URLs per class."""
    folder = Path(p.files_dir)
    urls = {}
    for cls in p.classes:
        path = folder / f"{cls}.txt"
        if not path.is_file():
            raise SourceError(f"fetch.source=files: {path} not found; write one URL per line "
                              f"for class {cls!r} there (fetch.files_dir={p.files_dir!r})")
        urls[cls] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            try:
                scheme = urlparse(url).scheme
            except ValueError:
                scheme = ""
            if scheme not in SCHEMES:
                log("fetch_urls", f"skipped {path}:{n}: {url!r} is not an http(s) or file URL")
                continue
            urls[cls].append(url)
    return urls


def from_ddg(p: FetchParams, search: Callable | None = None, retries: int = 3) -> dict[str, list[str]]:
    """DuckDuckGo image search through the `ddgs` package."""
    if search is None:
        try:
            from ddgs import DDGS
        except ImportError as e:
            raise SourceError("fetch.source=ddg needs the `ddgs` package: pip install ddgs") from e
        search = DDGS().images
    urls = {}
    for cls in p.classes:
        query = p.query.format(cls=cls)
        for attempt in range(retries):
            try:
                results = search(query, max_results=p.max_per_class)
                break
            except Exception as e:  # ddgs raises its own timeout / rate-limit errors
                if attempt == retries - 1:
                    raise SourceError(f"fetch.source=ddg: search for {query!r} failed after {retries} "
                                      f"tries ({type(e).__name__}: {e}); check the network, or use "
                                      "fetch.source=files with URL lists made in a browser") from e
                time.sleep(2 ** attempt)
        urls[cls] = [r["image"] for r in results if r.get("image")]
    return urls


def fetch(p: FetchParams, out_dir: Path, web_dir: Path) -> dict[str, list[str]]:
    """Collect URLs from the configured source and write one list per class."""
    web_dir.mkdir(parents=True, exist_ok=True)
    if p.source == "demo":
        raw = from_demo(p, web_dir)
    elif p.source == "files":
        raw = from_files(p)
    else:
        raw = from_ddg(p)
    urls = {cls: list(dict.fromkeys(raw[cls]))[: p.max_per_class] for cls in p.classes}
    out_dir.mkdir(parents=True, exist_ok=True)
    for cls, lst in urls.items():
        atomic_write_text(out_dir / f"{cls}.txt", "".join(u + "\n" for u in lst))
        log("fetch_urls", f"{cls}: {len(lst)} URLs")
    return urls


def read_lists(url_dir: Path, classes: list[str]) -> dict[str, list[str]]:
    lists = {}
    for cls in classes:
        path = url_dir / f"{cls}.txt"
        lists[cls] = [u for u in path.read_text(encoding="utf-8").splitlines() if u.strip()]
    return lists
