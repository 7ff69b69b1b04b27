"""The offline demo "web": scikit-learn's bundled digits as a tiny image search.

Each demo class is a digit name. Its URL list points at files in a local folder,
with seeded faults a real image search also returns: images under the wrong
class, photo crops that belong to no class, truncated / empty / HTML files, dead
links and exact duplicates. The ground truth of every URL is written beside the
web for evaluation and benchmarks only; the pipeline finds the faults through
its normal inputs.

Grey digits give the colourful photo crops away by colour alone, which real
photos of one class never do; `colours: varied` draws every digit in its own
colours so that an out-of-place score must look at more than colour.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_write_bytes, read_csv, write_csv
from .params import DemoParams
from .vocab import DIGIT_NAMES

GROUND_TRUTH = "ground_truth.csv"
TRUTH_FIELDS = ["url", "listed_class", "true_class", "fault", "sha256"]
CORRUPT_KINDS = ("truncated", "empty", "html", "missing")
MIN_CONTRAST = 0.3  # least luma difference (0..1) between a varied digit's strokes and its background
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B


@dataclass
class WebItem:
    listed_class: str
    true_class: str  # "" when the item belongs to no class
    fault: str  # none | mislabeled | out_of_place | duplicate | truncated | empty | html | missing
    data: bytes | None  # None: a dead link
    ext: str = ".png"


def digit_images(size: int) -> tuple[list[Image.Image], np.ndarray]:
    """sklearn's 8x8 digits as dark-on-light RGB images of `size` pixels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (255 - digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)
    images = [Image.fromarray(p).resize((size, size), Image.BICUBIC).convert("RGB") for p in pixels]
    return images, digits.target


def varied_digit_images(size: int, rng: np.random.Generator) -> tuple[list[Image.Image], np.ndarray]:
    """sklearn's digits, each in its own ink and background colours, so colour says nothing of the class.

    Colours are uniform in the RGB cube (any hue, saturation and brightness, dark
    on light or light on dark); half the backgrounds are a linear gradient between
    two colours, and every image gets mild noise of its own strength. Both ends of
    a gradient keep MIN_CONTRAST of luma from the ink, on the same side of it, so
    the whole background does and the digit stays legible.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    v, u = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    images = []
    for pixels in digits.images:
        ink = np.asarray(Image.fromarray((pixels / 16).astype(np.float32))
                         .resize((size, size), Image.BICUBIC)).clip(0, 1)[..., None]
        fg, bg, bg2 = stroke_colours(rng)
        angle = rng.uniform(0, 2 * np.pi)
        along = np.cos(angle) * u + np.sin(angle) * v
        t = (along - along.min()) / max(np.ptp(along), 1e-9)
        if rng.random() < 0.5:
            bg2 = bg  # a flat background
        background = bg * (1 - t[..., None]) + bg2 * t[..., None]
        rgb = background * (1 - ink) + fg * ink + rng.normal(0, rng.uniform(0, 0.03), (size, size, 3))
        images.append(Image.fromarray((rgb.clip(0, 1) * 255).round().astype(np.uint8)))
    return images, digits.target


def stroke_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ink and two background colours, both at least MIN_CONTRAST of luma on the same side of the ink."""
    while True:
        fg, bg = rng.random(3), rng.random(3)
        side = np.sign(LUMA @ bg - LUMA @ fg)
        if side * (LUMA @ bg - LUMA @ fg) >= MIN_CONTRAST:
            break
    while True:
        bg2 = rng.random(3)
        if side * (LUMA @ bg2 - LUMA @ fg) >= MIN_CONTRAST:
            return fg, bg, bg2


def photo_crops(n: int, size: int, rng: np.random.Generator) -> list[Image.Image]:
    """Random square crops of sklearn's two sample photos: images of no class."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    crops = []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 8, min(h, w) // 2))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BICUBIC)
        crops.append(crop.convert("RGB"))
    return crops


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_items(classes: list[str], p: DemoParams) -> list[WebItem]:
    """Every item of the demo web, faults included, in a seeded order.

    Colours come from their own random stream, so a seed injects the same faults
    into the same digits whatever `p.colours` is.
    """
    rng = np.random.default_rng(p.seed)
    if p.colours == "grey":
        images, targets = digit_images(p.img_size)
    else:
        images, targets = varied_digit_images(p.img_size, np.random.default_rng([p.seed, 1]))
    items: list[WebItem] = []
    for cls in classes:
        idx = np.flatnonzero(targets == DIGIT_NAMES.index(cls))
        if p.per_class:
            idx = np.sort(rng.choice(idx, size=min(p.per_class, len(idx)), replace=False))
        items += [WebItem(cls, cls, "none", png_bytes(images[i])) for i in idx]

    n = len(items)
    for i in rng.choice(n, size=round(p.mislabeled * n), replace=False):
        item = items[i]
        others = [c for c in classes if c != item.true_class]
        item.listed_class, item.fault = str(rng.choice(others)), "mislabeled"

    for crop in photo_crops(round(p.out_of_place * n), p.img_size, rng):
        items.append(WebItem(str(rng.choice(classes)), "", "out_of_place", png_bytes(crop)))

    clean = [it for it in items if it.fault == "none"]
    for i in rng.choice(len(clean), size=min(p.duplicates, len(clean)), replace=False):
        items.append(WebItem(clean[i].listed_class, clean[i].true_class, "duplicate", clean[i].data))

    sample = png_bytes(images[0])
    html = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>gone</body></html>"
    corrupt = {"truncated": (sample[: len(sample) // 2], ".png"), "empty": (b"", ".jpg"),
               "html": (html, ".jpg"), "missing": (None, ".jpg")}
    for kind in CORRUPT_KINDS:
        for k in range(p.corrupt_per_kind):
            data, ext = corrupt[kind]
            if data is not None and kind != "empty":
                data = data + b"\0" * k  # distinct files, same fault
            items.append(WebItem(str(rng.choice(classes)), "", kind, data, ext))

    return [items[i] for i in rng.permutation(len(items))]


def build_web(classes: list[str], p: DemoParams, web_dir: Path) -> dict[str, list[str]]:
    """Write the demo web under `web_dir`; return each class's URL list.

    URLs are relative `file:` URLs (resolved against the project root) so the
    project can be cloned or run as a DVC experiment anywhere. File names carry
    the content hash, so the URL lists change whenever the content does.
    """
    web_dir.mkdir(parents=True, exist_ok=True)
    urls: dict[str, list[str]] = {c: [] for c in classes}
    truth = []
    seen: dict[str, int] = {}
    for item in make_items(classes, p):
        digest = hashlib.sha256(item.data or b"").hexdigest()
        copy = seen.get(digest, 0)
        seen[digest] = copy + 1
        name = f"{digest[:16]}{'-%d' % copy if copy else ''}{item.ext}"
        if item.fault == "missing":
            name = f"missing-{len(truth)}{item.ext}"
        else:
            atomic_write_bytes(web_dir / name, item.data)
        url = f"file:{web_dir.as_posix()}/{name}"
        urls[item.listed_class].append(url)
        truth.append({"url": url, "listed_class": item.listed_class, "true_class": item.true_class,
                      "fault": item.fault, "sha256": digest if item.data is not None else ""})
    write_csv(web_dir / GROUND_TRUTH, truth, TRUTH_FIELDS)
    return urls


def read_ground_truth(web_dir: Path) -> list[dict]:
    return read_csv(web_dir / GROUND_TRUTH)
