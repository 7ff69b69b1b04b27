"""Decode every downloaded file with Pillow; keep what decodes as an RGB image of bounded size.

Rejected files stay where they are and get a reason in the report; accepted
ones are written as JPEG under the same content-hash name, in their class folder.
"""

from __future__ import annotations

import io
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageOps

from .atomic import atomic_write_bytes, write_csv
from .progress import track

REPORT_FIELDS = ["src", "cls", "status", "reason", "width", "height", "path"]


@dataclass
class Check:
    src: str
    cls: str
    status: str  # ok | rejected
    reason: str = ""
    width: int = 0
    height: int = 0
    path: str = ""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is flattened onto white, as a browser shows it."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def check_file(src: Path, cls: str, out_dir: Path, max_size: int) -> Check:
    """Fully decode `src`; write the RGB, resized image to out_dir/cls/<stem>.jpg."""
    if src.stat().st_size == 0:
        return Check(src.as_posix(), cls, "rejected", "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(src) as im:
                im.load()
                image = ImageOps.exif_transpose(im) or im
                image = to_rgb(image)
    except Image.DecompressionBombError as e:
        return Check(src.as_posix(), cls, "rejected", f"decompression bomb: {e}")
    except Image.DecompressionBombWarning as e:
        return Check(src.as_posix(), cls, "rejected", f"decompression bomb: {e}")
    except Image.UnidentifiedImageError:
        return Check(src.as_posix(), cls, "rejected", "not an image")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return Check(src.as_posix(), cls, "rejected", f"corrupt: {e}")
    if max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    dst = out_dir / cls / f"{src.stem}.jpg"
    atomic_write_bytes(dst, buf.getvalue())
    return Check(src.as_posix(), cls, "ok", "", image.width, image.height, dst.as_posix())


def _check(args: tuple) -> Check:
    return check_file(*args)


def verify_all(raw_dir: Path, out_dir: Path, report: Path, max_size: int, workers: int) -> list[Check]:
    """Check every file under raw_dir/<class>/ in worker processes; write the report."""
    jobs = [(f, f.parent.name, out_dir, max_size)
            for f in sorted(raw_dir.glob("*/*")) if f.is_file() and not f.name.startswith(".")]
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        results = list(track(pool.map(_check, jobs, chunksize=16), len(jobs), "verify"))
    write_csv(report, (asdict(r) for r in results), REPORT_FIELDS)
    return results
