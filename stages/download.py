"""download: every URL to a content-named file, resuming earlier runs, with a per-URL report and metrics."""

from collections import Counter
from pathlib import Path

from bearid import params, runner, sources
from bearid.download import download_all
from bearid.progress import log


def main() -> None:
    fetch = params.load("fetch")
    p = params.load("download")
    lists = sources.read_lists(Path("data/urls"), fetch.classes)
    results = download_all(lists, Path("data/raw"), Path("data/download.csv"), p,
                           metrics=Path("data/download_metrics.json"))
    log("download", ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.status for r in results).items())))
    for reason, n in sorted(Counter(r.reason for r in results if r.status == "failed").items()):
        log("download", f"failed {n}: {reason}")


if __name__ == "__main__":
    runner.run("download", main)
