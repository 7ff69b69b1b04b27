"""fetch_urls: one URL list per class from the configured source."""

from pathlib import Path

from bearid import params, stage, sources


def main() -> None:
    p = params.load("fetch")
    sources.fetch(p, out_dir=Path("data/urls"), web_dir=Path("data/web"))


if __name__ == "__main__":
    stage.run("fetch_urls", main)
