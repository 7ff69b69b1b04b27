"""Make your own image classifier from a web image search, as a reproducible pipeline."""

__version__ = "0.1.0"
