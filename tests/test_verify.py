"""verify.py: every file is decoded; good ones become bounded RGB JPEGs, bad ones a reason in the report."""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bearid import verify
from bearid.atomic import read_csv

MAX = 64
WHITE, RED, BLUE = (255, 255, 255), (255, 0, 0), (0, 0, 255)


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def halves(mode: str, size: tuple[int, int], left, right) -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def make_files() -> dict[str, bytes]:
    rgba = halves("RGBA", (20, 20), (0, 0, 0, 0), (0, 0, 255, 255))  # left half fully transparent
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (10, 0, 20, 20))  # right half red, left half index 0 = transparent
    sixteen = Image.fromarray(np.hstack([np.zeros((20, 10), np.uint16), np.full((20, 10), 65280, np.uint16)]))
    assert sixteen.mode == "I;16"
    rotated = halves("RGB", (40, 20), RED, BLUE)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the viewer rotates 90 degrees clockwise
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    full_png = encode(noise, "PNG")
    return {
        "good.png": encode(halves("RGB", (30, 20), RED, BLUE), "PNG"),
        "photo.jpg": encode(Image.new("RGB", (24, 16), BLUE), "JPEG", quality=95),
        "rgba.png": encode(rgba, "PNG"),
        "palette.png": encode(palette, "PNG", transparency=0),
        "la.png": encode(halves("LA", (20, 20), (0, 0), (0, 255)), "PNG"),
        "sixteen.png": encode(sixteen, "PNG"),
        "cmyk.jpg": encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95),
        "big.png": encode(halves("RGB", (200, 100), RED, BLUE), "PNG"),
        "exif.jpg": encode(rotated, "JPEG", exif=exif.tobytes(), quality=95),
        "truncated.png": full_png[: len(full_png) // 2],
        "zero.jpg": b"",
        "page.jpg": b"<!DOCTYPE html><html><body>Not Found</body></html>",
        ".part-abc123": encode(Image.new("RGB", (8, 8)), "PNG"),  # a download's temp file: ignored
    }


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> tuple[dict[str, verify.Check], Path, Path]:
    root = tmp_path_factory.mktemp("verify")
    for name, data in make_files().items():
        cls = "bears" if name != "photo.jpg" else "cubs"
        (root / "raw" / cls).mkdir(parents=True, exist_ok=True)
        (root / "raw" / cls / name).write_bytes(data)
    report = root / "report.csv"
    results = verify.verify_all(root / "raw", root / "images", report, max_size=MAX, workers=1)
    return {Path(r.src).name: r for r in results}, root / "images", report


def output(checks: dict, name: str) -> Image.Image:
    check = checks[name]
    assert check.status == "ok", check.reason
    image = Image.open(check.path)
    image.load()
    assert image.format == "JPEG" and image.mode == "RGB"
    assert image.size == (check.width, check.height)
    return image


def close(pixel, expected, tol=12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected))


def test_good_images_become_rgb_jpegs(verified):
    checks, images, _ = verified
    image = output(checks, "good.png")
    assert image.size == (30, 20)
    assert close(image.getpixel((3, 10)), RED) and close(image.getpixel((26, 10)), BLUE)
    assert Path(checks["good.png"].path) == images / "bears" / "good.jpg"
    assert Path(checks["photo.jpg"].path) == images / "cubs" / "photo.jpg"
    assert close(output(checks, "photo.jpg").getpixel((12, 8)), BLUE)


@pytest.mark.parametrize("name", ["rgba.png", "palette.png", "la.png"])
def test_transparency_is_flattened_on_white(verified, name):
    image = output(verified[0], name)
    assert close(image.getpixel((2, 10)), WHITE)
    assert not close(image.getpixel((17, 10)), WHITE)


def test_sixteen_bit_grey_is_scaled_to_eight_bits(verified):
    image = output(verified[0], "sixteen.png")
    assert close(image.getpixel((2, 10)), (0, 0, 0)) and close(image.getpixel((17, 10)), WHITE)


def test_cmyk_jpeg(verified):
    assert close(output(verified[0], "cmyk.jpg").getpixel((8, 8)), RED)


def test_large_image_is_resized_keeping_aspect(verified):
    checks = verified[0]
    image = output(checks, "big.png")
    assert image.size == (MAX, MAX // 2)
    assert close(image.getpixel((5, 16)), RED) and close(image.getpixel((58, 16)), BLUE)


def test_exif_orientation_is_applied(verified):
    image = output(verified[0], "exif.jpg")
    assert image.size == (20, 40)
    assert close(image.getpixel((10, 5)), RED) and close(image.getpixel((10, 35)), BLUE)


@pytest.mark.parametrize("name, reason", [
    ("zero.jpg", "empty file"),
    ("page.jpg", "not an image"),
    ("truncated.png", "corrupt: "),
])
def test_bad_files_are_rejected_with_a_reason(verified, name, reason):
    checks, images, _ = verified
    check = checks[name]
    assert check.status == "rejected" and check.reason.startswith(reason)
    assert check.path == "" and not (images / "bears" / f"{Path(name).stem}.jpg").exists()


def test_report_has_a_row_per_file_and_skips_hidden_files(verified):
    checks, images, report = verified
    rows = read_csv(report)
    assert list(rows[0]) == verify.REPORT_FIELDS
    assert {Path(r["src"]).name for r in rows} == set(make_files()) - {".part-abc123"}
    assert rows == [{k: str(v) for k, v in asdict(checks[Path(r["src"]).name]).items()} for r in rows]
    assert {r["cls"] for r in rows} == {"bears", "cubs"}
    written = sorted(p.name for p in images.rglob("*.jpg"))
    assert written == sorted(f"{Path(n).stem}.jpg" for n, c in checks.items() if c.status == "ok")
    assert sum(c.status == "rejected" for c in checks.values()) == 3


def test_check_file_directly(tmp_path):
    src = tmp_path / "x.gif"
    Image.new("P", (10, 5), 3).save(src, format="GIF")
    check = verify.check_file(src, "c", tmp_path / "out", max_size=8)
    assert (check.status, check.width, check.height) == ("ok", 8, 4)
    assert Image.open(tmp_path / "out" / "c" / "x.jpg").mode == "RGB"
