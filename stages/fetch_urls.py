"""fetch_urls: one URL list per class from the configured source."""

from pathlib import Path

from bearid import params, sources

p = params.load("fetch")
sources.fetch(p, out_dir=Path("data/urls"), web_dir=Path("data/web"))
