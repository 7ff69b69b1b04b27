"""verify.py: every file is decoded; good ones become bounded RGB JPEGs, bad ones a reason in the report.

The malformed inputs (truncations, bad headers, bombs, odd modes, animations,
duplicates) are made here, so the tests need no corpus on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from bearid import verify
from bearid.atomic import read_csv
from bearid.params import VerifyParams

MAX = 64
PARAMS = VerifyParams(max_size=MAX, workers=1, min_size=8, max_pixels=1_000_000, animated="first",
                      near_dup_distance=3, resample="bilinear")
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
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 90, 3), dtype=np.uint8)).resize(
        (900, 600), Image.Resampling.BICUBIC)
    full_jpeg = encode(photo, "JPEG", quality=90)
    frames = [Image.new("P", (20, 20), i) for i in (1, 2, 3)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50)
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
        "one_bit.png": encode(halves("1", (20, 20), 0, 1), "PNG"),
        "photo_big.jpg": full_jpeg,
        "truncated.jpg": full_jpeg[: len(full_jpeg) * 2 // 3],
        "bad_header.png": full_png[:16] + b"\xde\xad" * 40 + full_png[96:],
        "bomb.png": encode(Image.new("1", (4000, 4000)), "PNG"),  # 16 Mpx in a few KB: past twice the limit
        "slightly_big.png": encode(Image.new("L", (1200, 1000)), "PNG"),  # 1.2 Mpx: past the limit itself
        "tiny.png": encode(Image.new("RGB", (5, 30)), "PNG"),
        "animated.gif": gif.getvalue(),
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
    results = verify.verify_all(root / "raw", root / "images", report, PARAMS, metrics=root / "metrics.json")
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


REJECTED = {
    "zero.jpg": "empty",
    "page.jpg": "not_an_image",
    "truncated.png": "truncated",
    "truncated.jpg": "truncated",
    "bad_header.png": "corrupt",
    "bomb.png": "decompression_bomb",
    "slightly_big.png": "decompression_bomb",
    "tiny.png": "too_small",
}


@pytest.mark.parametrize("name, reason", REJECTED.items())
def test_bad_files_are_rejected_with_their_reason(verified, name, reason):
    checks, images, _ = verified
    check = checks[name]
    assert (check.status, check.reason) == ("rejected", reason), check.detail
    assert reason in verify.REASONS
    assert check.path == "" and not (images / "bears" / f"{Path(name).stem}.jpg").exists()


def test_one_bit_image(verified):
    image = output(verified[0], "one_bit.png")
    assert close(image.getpixel((2, 10)), (0, 0, 0)) and close(image.getpixel((17, 10)), WHITE)


def test_animation_keeps_its_first_frame_or_is_rejected(verified, tmp_path):
    checks = verified[0]
    image = output(checks, "animated.gif")
    assert close(image.getpixel((10, 10)), RED) and checks["animated.gif"].detail == "animated: first of 3 frames"
    src = Path(checks["animated.gif"].src)
    check = verify.check_file(src, "c", tmp_path, replace(PARAMS, animated="reject"))
    assert (check.status, check.reason, check.detail) == ("rejected", "animated", "3 frames")


def test_large_jpeg_is_decoded_through_draft(verified, tmp_path, monkeypatch):
    image = output(verified[0], "photo_big.jpg")
    assert image.size == (MAX, round(MAX * 600 / 900))
    calls = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: calls.append((self.size, size)) or real(self, mode, size))
    check = verify.check_file(Path(verified[0]["photo_big.jpg"].src), "c", tmp_path, PARAMS)
    assert check.status == "ok" and calls == [((900, 600), (64, 43))]


def test_exact_duplicates_by_pixels_across_classes(tmp_path):
    base = halves("RGB", (40, 30), RED, BLUE)
    other = Image.fromarray(np.random.default_rng(2).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    for cls, name, data in [("a", "one.png", encode(base, "PNG")), ("b", "same.bmp", encode(base, "BMP")),
                            ("b", "other.png", encode(other, "PNG"))]:
        (tmp_path / "raw" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "raw" / cls / name).write_bytes(data)
    checks = {Path(c.src).name: c for c in verify.verify_all(tmp_path / "raw", tmp_path / "out",
                                                             tmp_path / "r.csv", PARAMS)}
    dup = checks["same.bmp"]
    assert (dup.status, dup.reason, dup.path) == ("rejected", "duplicate", "")
    assert dup.detail == f"same pixels as {checks['one.png'].src}"
    assert not (tmp_path / "out" / "b" / "same.jpg").exists()
    assert checks["other.png"].status == "ok" and checks["one.png"].status == "ok"


def test_near_duplicates_share_a_group(tmp_path):
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (24, 32, 3), dtype=np.uint8)).resize(
        (320, 240), Image.Resampling.BICUBIC)
    other = Image.fromarray(np.random.default_rng(4).integers(0, 255, (24, 32, 3), dtype=np.uint8)).resize(
        (320, 240), Image.Resampling.BICUBIC)
    raw = tmp_path / "raw"
    for cls, name, data in [("a", "orig.png", encode(photo, "PNG")),
                            ("b", "small.jpg", encode(photo.resize((160, 120)), "JPEG", quality=70)),
                            ("a", "other.png", encode(other, "PNG"))]:
        (raw / cls).mkdir(parents=True, exist_ok=True)
        (raw / cls / name).write_bytes(data)
    checks = {Path(c.src).name: c for c in verify.verify_all(raw, tmp_path / "out", tmp_path / "r.csv", PARAMS)}
    assert all(c.status == "ok" for c in checks.values())
    assert checks["orig.png"].group == checks["small.jpg"].group == checks["orig.png"].src
    assert checks["other.png"].group == ""


def test_report_has_a_row_per_file_and_skips_hidden_files(verified):
    checks, images, report = verified
    rows = read_csv(report)
    assert list(rows[0]) == verify.REPORT_FIELDS
    assert {Path(r["src"]).name for r in rows} == set(make_files()) - {".part-abc123"}
    assert rows == [{k: str(v) for k, v in asdict(checks[Path(r["src"]).name]).items()} for r in rows]
    assert {r["cls"] for r in rows} == {"bears", "cubs"}
    written = sorted(p.name for p in images.rglob("*.jpg"))
    assert written == sorted(f"{Path(n).stem}.jpg" for n, c in checks.items() if c.status == "ok")
    assert {n for n, c in checks.items() if c.status == "rejected"} == set(REJECTED)
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["bears"]["rejected"] == len(REJECTED) and metrics["cubs"] == {
        "checked": 1, "ok": 1, "rejected": 0, "rejected_by_reason": {}, "in_near_duplicate_groups": 0}
    assert metrics["bears"]["rejected_by_reason"]["decompression_bomb"] == 2


def test_check_file_directly(tmp_path):
    src = tmp_path / "x.gif"
    Image.new("P", (10, 5), 3).save(src, format="GIF")
    check = verify.check_file(src, "c", tmp_path / "out", replace(PARAMS, max_size=8, min_size=1))
    assert (check.status, check.width, check.height) == ("ok", 8, 4)
    assert Image.open(tmp_path / "out" / "c" / "x.jpg").mode == "RGB"


def test_phash_is_imagehash_and_shrinking_first_changes_little():
    import imagehash

    small = Image.fromarray(np.random.default_rng(5).integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize(
        (120, 90), Image.Resampling.BICUBIC)
    assert verify.phash(small) == str(imagehash.phash(small))  # no larger than HASH_INPUT: hashed as it is
    large = small.resize((1200, 900), Image.Resampling.BICUBIC)
    bits = bin(int(verify.phash(large), 16) ^ int(str(imagehash.phash(large)), 16)).count("1")
    assert bits <= 2  # box-reduced to 128 px first: (almost) the hash of the full image


def test_flat_images_get_no_perceptual_hash_and_no_group(tmp_path):
    raw = tmp_path / "raw" / "a"
    raw.mkdir(parents=True)
    (raw / "red.png").write_bytes(encode(Image.new("RGB", (40, 30), RED), "PNG"))
    (raw / "blue.png").write_bytes(encode(Image.new("RGB", (40, 30), BLUE), "PNG"))
    checks = verify.verify_all(tmp_path / "raw", tmp_path / "out", tmp_path / "r.csv", PARAMS)
    assert [(c.status, c.phash, c.group) for c in checks] == [("ok", "", "")] * 2


@pytest.mark.parametrize("resample", ["bilinear", "bicubic", "lanczos"])
def test_resample_filters(tmp_path, resample):
    src = tmp_path / "x.png"
    halves("RGB", (300, 200), RED, BLUE).save(src)
    check = verify.check_file(src, "c", tmp_path / "out", replace(PARAMS, resample=resample))
    image = output({"x": check}, "x")
    assert image.size == (MAX, 43) and close(image.getpixel((3, 20)), RED) and close(image.getpixel((60, 20)), BLUE)


def test_outputs_are_written_whole_and_leave_no_temp_files(verified):
    checks, images, _ = verified
    assert not [f for f in images.rglob("*") if f.name.startswith(".")]
    for c in checks.values():
        if c.status == "ok":
            data = Path(c.path).read_bytes()
            assert data.endswith(b"\xff\xd9")  # a whole JPEG
            assert c.pixels_sha == hashlib.sha256(data).hexdigest()[:16]
