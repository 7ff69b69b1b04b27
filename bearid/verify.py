"""Decode every downloaded file once; keep what decodes as an RGB image of bounded size.

Downloaded "images" include truncated files, decompression bombs, HTML pages,
16-bit scans, CMYK print files and animations. Each file is decoded to its end in
a worker process (JPEGs through `draft`, which scales in the DCT while still
reading the whole stream), converted to RGB, EXIF-rotated, resized and written
as JPEG under the same content-hash name in its class folder, all in one pass.
Rejected files stay where they are and get a reason from `REASONS`. Exact
duplicates (same decoded pixels) are rejected after the first; near-duplicates
(perceptual hash within `near_dup_distance` bits, through the `imagehash`
library's pHash) are kept but share a `group`, since one image in both train and
valid leaks.

Cost per image: one decode (JPEGs DCT-scaled to no less than the target), one
resize (`verify.resample`), one JPEG encode and a pHash of a 128 px grey copy.
The exact-duplicate hash is the SHA-256 of the written JPEG (~100 KB, not the
~750 KB of pixels; the encoder is deterministic). Outputs are written to a temp
name and renamed (a kill leaves no half file) but not fsynced one by one: DVC
hashes them after the stage.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import math
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import imagehash
import numpy as np
import scipy.fftpack  # noqa: F401 - imagehash.phash imports it on first use: here, forked workers inherit it
from PIL import Image, ImageOps

from .atomic import atomic_write_bytes, write_csv, write_json
from .images import SNIFF_BYTES, sniff_ext
from .params import VerifyParams
from .progress import track

REPORT_FIELDS = ["src", "cls", "status", "reason", "detail", "width", "height", "path", "pixels_sha", "phash",
                 "group"]
REASONS = {
    "ok": "decoded; written as an RGB JPEG",
    "empty": "a file of zero bytes",
    "not_an_image": "no image format Pillow knows (HTML, text, other files)",
    "truncated": "the data ends before the image does",
    "corrupt": "the decoder failed on the data (detail has Pillow's message)",
    "decompression_bomb": "more than verify.max_pixels pixels",
    "too_small": "shorter side below verify.min_size",
    "animated": "several frames, with verify.animated: reject",
    "unsupported_mode": "a pixel format that has no sensible RGB conversion",
    "duplicate": "the same decoded pixels as an earlier file (detail names it)",
}
JPEG_QUALITY = 90
DRAFT_GAP = 1  # JPEGs are DCT-scaled to no less than DRAFT_GAP x the target size, then resampled
REDUCING_GAP = 2.0  # Pillow's thumbnail() default: box-reduce by whole factors first, then the filter
RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
            "lanczos": Image.Resampling.LANCZOS}  # verify.resample: all antialiased when downscaling
FLAT = 8  # grey levels: an image whose range is this small gets no perceptual hash
HASH_INPUT = 128  # the pHash's 32x32 grey image is made from a box-reduced copy this big
ORIENTATION = 0x0112
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Check:
    src: str
    cls: str
    status: str  # ok | rejected
    reason: str = ""  # a key of REASONS
    detail: str = ""
    width: int = 0
    height: int = 0
    path: str = ""
    pixels_sha: str = ""  # of the written JPEG: equal for equal decoded (and resized) pixels
    phash: str = ""  # imagehash pHash, 64 bits in hex; "" for a flat image (nothing to hash)
    group: str = ""  # near-duplicate group: the src of its first member


def _scale_16(a: np.ndarray) -> np.ndarray:
    """Integer or float samples of any range to 0..255."""
    a = np.nan_to_num(a.astype(np.float32))
    top = float(a.max(initial=0))
    if top > 65535:  # beyond 16 bits (32-bit integers, large floats): the maximum becomes white
        scale = 255 / top
    elif top > 255:  # 16-bit samples
        scale = 255 / 65535
    elif 0 < top <= 1:  # floats in 0..1
        scale = 255.0
    else:  # already 0..255
        scale = 1.0
    return (a * scale).clip(0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is flattened onto white, as a browser shows it."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit integer or float grey
        return Image.fromarray(_scale_16(np.asarray(image))).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy an RGB image


def phash(image: Image.Image) -> str:
    """imagehash's 64-bit DCT pHash as 16 hex digits; "" for a flat image, which has nothing to hash.

    imagehash resizes to 32x32 with Lanczos; it gets a grey copy box-reduced to at
    most HASH_INPUT px first, which costs a fraction of Lanczos on the full image
    and changes no bit that matters (both are low-pass filters). The pHash of a
    flat image (one grey level, give or take FLAT) is all rounding noise: every
    flat image, whatever its colour, would be a "near-duplicate" of every other.
    """
    grey = image.convert("L")
    if max(grey.size) > HASH_INPUT:
        grey = grey.resize((min(grey.width, HASH_INPUT), min(grey.height, HASH_INPUT)), Image.Resampling.BOX)
    low, high = grey.getextrema()
    return "" if high - low <= FLAT else str(imagehash.phash(grey))


def _reject(src: Path, cls: str, reason: str, detail: str = "") -> Check:
    return Check(src.as_posix(), cls, "rejected", reason, detail[:300])


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(ORIENTATION, 1))
    except Exception:  # a broken EXIF block costs the rotation, not the image
        return 1


def fit(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """`size` scaled to fit in max_size x max_size, aspect kept; unchanged when it fits."""
    w, h = size
    r = min(1.0, max_size / max(w, h))
    return max(1, round(w * r)), max(1, round(h * r))


def decode(src: Path, p: VerifyParams) -> tuple[Image.Image, str, tuple[int, int]]:
    """Open, check and fully decode `src`, JPEGs DCT-scaled toward `max_size`.

    Returns the RGB image, a note for the report and the output size, computed from
    the full size so that draft scaling does not change the aspect rounding.
    """
    with warnings.catch_warnings():
        # Pillow's notes on odd tags, and its bomb warning: the decode and verify.max_pixels decide
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(src) as im:
            w, h = im.size
            if w * h > p.max_pixels:
                raise Image.DecompressionBombError(f"{w}x{h} = {w * h} pixels > verify.max_pixels={p.max_pixels}")
            if min(w, h) < p.min_size:
                raise _Rejected("too_small", f"{w}x{h}, verify.min_size={p.min_size}")
            frames = getattr(im, "n_frames", 1)
            note = ""
            if frames > 1:
                if p.animated == "reject":
                    raise _Rejected("animated", f"{frames} frames")
                im.seek(0)
                note = f"animated: first of {frames} frames"
            if im.format == "JPEG" and max(w, h) > p.max_size * DRAFT_GAP:
                r = p.max_size * DRAFT_GAP / max(w, h)
                im.draft(im.mode, (math.ceil(w * r), math.ceil(h * r)))
            im.load()
            orientation = _orientation(im)
            image = ImageOps.exif_transpose(im) if orientation != 1 else im
            target = fit((h, w) if orientation in (5, 6, 7, 8) else (w, h), p.max_size)
            try:
                image = to_rgb(image)
            except ValueError as e:
                raise _Rejected("unsupported_mode", f"{im.mode}: {e}") from None
    return image, note, target


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def check_file(src: Path, cls: str, out_dir: Path, p: VerifyParams) -> Check:
    """Decode `src` once; write the RGB image, resized to fit max_size, as out_dir/cls/<stem>.jpg."""
    try:
        if src.stat().st_size == 0:
            return _reject(src, cls, "empty")
        image, note, target = decode(src, p)
    except _Rejected as e:
        return _reject(src, cls, e.reason, e.detail)
    except Image.DecompressionBombError as e:
        return _reject(src, cls, "decompression_bomb", f"verify.max_pixels={p.max_pixels}: {e}")
    except Image.UnidentifiedImageError:
        with open(src, "rb") as f:
            ext = sniff_ext(f.read(SNIFF_BYTES))
        if ext:  # an image signature, then a header no decoder accepts
            return _reject(src, cls, "corrupt", f"{ext[1:]} signature, unreadable header")
        return _reject(src, cls, "not_an_image")
    except EOFError as e:
        return _reject(src, cls, "truncated", f"EOFError: {e}")
    except OSError as e:
        reason = "truncated" if "truncated" in str(e) else "corrupt"
        return _reject(src, cls, reason, f"{type(e).__name__}: {e}")
    except Exception as e:  # any decoder failure is this file's problem, never the stage's
        return _reject(src, cls, "corrupt", f"{type(e).__name__}: {e}")
    if image.size != target:  # reduce by whole factors first, then the filter: fast and sharp
        image = image.resize(target, RESAMPLE[p.resample], reducing_gap=REDUCING_GAP)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    dst = out_dir / cls / f"{src.stem}.jpg"
    data = buf.getbuffer()
    atomic_write_bytes(dst, data, fsync=False)
    sha = hashlib.sha256(data).hexdigest()[:16]  # the encoder is deterministic: same pixels, same bytes
    return Check(src.as_posix(), cls, "ok", "ok", note, image.width, image.height, dst.as_posix(), sha,
                 phash(image))


def _check(args: tuple) -> Check:
    return check_file(*args)


def die_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the stage that started it is gone (killed: no shutdown ran).

    A killed stage's workers would otherwise finish their queue, writing into
    data/images, then block forever on a queue nobody feeds. Linux is told to kill
    the worker with its parent; elsewhere a thread watches the parent id.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    if os.getppid() != parent:  # died before the prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def mark_duplicates(checks: list[Check]) -> None:
    """Reject every image whose decoded pixels equal an earlier one's, and delete its output."""
    first: dict[str, Check] = {}
    for c in checks:
        if c.status != "ok":
            continue
        if c.pixels_sha in first:
            Path(c.path).unlink(missing_ok=True)
            c.status, c.reason, c.path = "rejected", "duplicate", ""
            c.detail = f"same pixels as {first[c.pixels_sha].src}"
        else:
            first[c.pixels_sha] = c


def group_near_duplicates(checks: list[Check], distance: int) -> None:
    """Give images whose perceptual hashes differ in at most `distance` bits one group name."""
    ok = [c for c in checks if c.status == "ok" and c.phash]
    if len(ok) < 2:
        return
    hashes = np.array([int(c.phash, 16) for c in ok], dtype=np.uint64)
    parent = list(range(len(ok)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(ok), 512):
        block = np.bitwise_count(hashes[start:start + 512, None] ^ hashes[None, :])
        for i, j in zip(*np.nonzero(block <= distance)):
            a, b = root(start + int(i)), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    sizes = Counter(root(i) for i in range(len(ok)))
    for i, c in enumerate(ok):
        if sizes[root(i)] > 1:
            c.group = ok[root(i)].src


def summary(checks: list[Check]) -> dict:
    """Counts per class, for `dvc metrics show`."""
    out: dict = {}
    for cls in sorted({c.cls for c in checks}):
        rows = [c for c in checks if c.cls == cls]
        out[cls] = {"checked": len(rows), "ok": sum(c.status == "ok" for c in rows),
                    "rejected": sum(c.status != "ok" for c in rows),
                    "rejected_by_reason": dict(sorted(Counter(c.reason for c in rows if c.status != "ok").items())),
                    "in_near_duplicate_groups": sum(bool(c.group) for c in rows)}
    return out


def verify_all(raw_dir: Path, out_dir: Path, report: Path, p: VerifyParams,
               metrics: Path | None = None) -> list[Check]:
    """Check every file under raw_dir/<class>/ in worker processes; write the report (and metrics)."""
    files = sorted(f for f in raw_dir.glob("*/*") if f.is_file() and not f.name.startswith("."))
    jobs = [(f, f.parent.name, out_dir, p) for f in files]
    out_dir.mkdir(parents=True, exist_ok=True)
    if p.workers == 1:
        checks = list(track(map(_check, jobs), len(jobs), "verify"))
    else:
        with ProcessPoolExecutor(p.workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            chunk = max(1, min(16, len(jobs) // (4 * p.workers)))
            checks = list(track(pool.map(_check, jobs, chunksize=chunk), len(jobs), "verify"))
    mark_duplicates(checks)
    group_near_duplicates(checks, p.near_dup_distance)
    write_csv(report, (asdict(c) for c in checks), REPORT_FIELDS)
    if metrics is not None:
        write_json(metrics, summary(checks))
    return checks
