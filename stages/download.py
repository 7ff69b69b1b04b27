"""download: every URL to a content-named file, with a per-URL report."""

from collections import Counter
from pathlib import Path

from bearid import params, sources
from bearid.download import download_all
from bearid.progress import log

fetch = params.load("fetch")
p = params.load("download")
lists = sources.read_lists(Path("data/urls"), fetch.classes)
results = download_all(lists, Path("data/raw"), Path("data/download.csv"),
                       workers=p.workers, timeout=p.timeout, max_bytes=p.max_bytes)
log("download", ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.status for r in results).items())))
