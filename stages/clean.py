"""clean: human decisions first, then the automatic policy; a cleaned manifest and a report."""

from pathlib import Path

from bearid import params, runner
from bearid.clean import clean_files


def main() -> None:
    fetch = params.load("fetch")
    p = params.load("clean")
    clean_files(Path("data/manifest.csv"), Path("data/interpret/candidates.csv"), Path("data/interpret/noise.json"),
                fetch.classes, p, Path("data/clean"))


if __name__ == "__main__":
    runner.run("clean", main)
