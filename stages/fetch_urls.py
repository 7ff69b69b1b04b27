"""fetch_urls: one URL list per class from the configured source, plus the search hits behind it."""

from pathlib import Path

from bearid import params, runner, sources


def main() -> None:
    p = params.load("fetch")
    sources.fetch(p, out_dir=Path("data/urls"), web_dir=Path("data/web"), search_dir=Path("data/search"))


if __name__ == "__main__":
    runner.run("fetch_urls", main)
