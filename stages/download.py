"""download: every URL to a content-named file, with a per-URL report."""

from collections import Counter
from pathlib import Path

from bearid import params, stage, sources
from bearid.download import download_all
from bearid.progress import log


def main() -> None:
    fetch = params.load("fetch")
    p = params.load("download")
    lists = sources.read_lists(Path("data/urls"), fetch.classes)
    results = download_all(lists, Path("data/raw"), Path("data/download.csv"),
                           workers=p.workers, timeout=p.timeout, max_bytes=p.max_bytes)
    log("download", ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.status for r in results).items())))


if __name__ == "__main__":
    stage.run("download", main)
