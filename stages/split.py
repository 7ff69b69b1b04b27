"""split: a seeded, stable train/valid/test manifest."""

from collections import Counter
from pathlib import Path

from bearid import params, runner
from bearid.progress import log
from bearid.split import make_manifest, near_duplicate_groups


def main() -> None:
    fetch = params.load("fetch")
    p = params.load("split")
    rows = make_manifest(Path("data/images"), fetch.classes, p.valid_pct, p.test_pct, p.seed,
                         Path("data/manifest.csv"), near_duplicate_groups(Path("data/verify.csv")))
    log("split", ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["split"] for r in rows).items())))


if __name__ == "__main__":
    runner.run("split", main)
