"""The image formats the project accepts, in one place: by file name, by first bytes, by Pillow plugin."""

from __future__ import annotations

# What untrusted bytes may be decoded as: fewer Pillow plugins, less attack surface.
PIL_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# File names treated as images (folders given to `bearid predict`, files the review page serves).
SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
# First bytes of a downloaded file -> the extension it is saved under.
SIGNATURES = [(b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"),
              (b"GIF89a", ".gif"), (b"BM", ".bmp"), (b"II*\0", ".tif"), (b"MM\0*", ".tif"),
              (b"\0\0\1\0", ".ico")]
SNIFF_BYTES = 32  # enough for every signature above


def sniff_ext(head: bytes) -> str:
    """Image file extension from the first bytes, or "" when they are no image format we decode."""
    for magic, ext in SIGNATURES:
        if head.startswith(magic):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return ".avif"
    return ""
