"""Contact sheets of what clean drops or relabels, one picture per reason, so a person sees it before retraining.

A sheet is a grid of fixed-size thumbnails in report order (most suspicious
first), each captioned with the file's stem and `label -> drop` or
`label -> new label`, under a title line with the count. Text is drawn in
Pillow's built-in bitmap font, so the pixels, and with them the PNG bytes,
depend on the inputs only, not on a machine's fonts or FreeType. An image that
cannot be read gets a placeholder tile naming the error: one bad file must not
hide the others.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from .atomic import atomic_open
from .progress import log
from .vocab import MISLABELED, OUT_OF_PLACE

TILE = 96  # px, a thumbnail's box; smaller images are centred in it, never enlarged
COLUMNS = 8
MAX_TILES = 48  # past this a sheet says "... and N more": a person reviews the first, most suspicious ones
PAD = 6
FONT = ImageFont.load_default_imagefont()
CHAR_W, LINE_H = 6, 11  # the bitmap font's cell
CAPTION_LINES = 2
CELL_W, CELL_H = TILE + PAD, TILE + CAPTION_LINES * LINE_H + PAD
BACKGROUND, TILE_BACKGROUND, TEXT = (255, 255, 255), (232, 232, 232), (0, 0, 0)
PLACEHOLDER, PLACEHOLDER_TEXT = (255, 224, 224), (160, 0, 0)

# file stem -> title; which report rows go where: sheet_of
SHEETS = {
    "policy_out_of_place": "dropped by the policy as likely out of place",
    "policy_mislabeled": "dropped by the policy as likely mislabeled",
    "human_delete": "deleted by a person (does not belong)",
    "human_relabel": "relabelled by a person",
}


@dataclass(frozen=True)
class Tile:
    path: Path
    caption: str  # a line per "\n", each shortened to the tile's width


def shorten(text: str, width: int = TILE // CHAR_W) -> str:
    return text if len(text) <= width else text[: width - 2] + ".."


def sheet_of(row: dict) -> str:
    """Which sheet a report row belongs on; a row that fits none is an error, not a silent omission."""
    by, action, reason = row["decided_by"], row["action"], row["reason"]
    if by == "policy" and reason.startswith(OUT_OF_PLACE):
        return "policy_out_of_place"
    if by == "policy" and reason.startswith(MISLABELED):
        return "policy_mislabeled"
    if by == "human" and action in ("delete", "relabel"):
        return f"human_{action}"
    raise ValueError(f"report row {row['path']}: no contact sheet for decided_by={by!r}, "
                     f"action={action!r}, reason={reason!r}")


def tile_of(row: dict, root: Path = Path(".")) -> Tile:
    target = "drop" if row["action"] == "delete" else row["new_label"]
    return Tile(root / row["path"], f"{Path(row['path']).stem}\n{row['label']} -> {target}")


def thumbnail(path: Path) -> Image.Image:
    """The image shrunk to fit TILE x TILE, aspect kept, centred; a placeholder naming the error if unreadable."""
    box = Image.new("RGB", (TILE, TILE), TILE_BACKGROUND)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (TILE, TILE))  # JPEG: decode at a reduced scale, far cheaper than full size
            im = im.convert("RGB")
            im.thumbnail((TILE, TILE))  # shrinks only
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        log("clean", f"warning: contact sheet: cannot read {path}: {type(e).__name__}: {e}")
        return placeholder(e)
    box.paste(im, ((TILE - im.width) // 2, (TILE - im.height) // 2))
    return box


def placeholder(error: Exception) -> Image.Image:
    box = Image.new("RGB", (TILE, TILE), PLACEHOLDER)
    width = TILE // CHAR_W - 1
    lines = ["unreadable:", *textwrap.wrap(type(error).__name__, width, break_on_hyphens=False),
             *textwrap.wrap(str(error), width)]
    draw = ImageDraw.Draw(box)
    for i, line in enumerate(lines[: (TILE - 4) // LINE_H]):
        draw.text((3, 2 + i * LINE_H), line, fill=PLACEHOLDER_TEXT, font=FONT)
    return box


def title_line(count: int, title: str) -> str:
    return f"{title}: {count} image{'' if count == 1 else 's'}"


def more_line(count: int) -> str | None:
    """The note under a truncated grid, or None when every tile is shown."""
    return f"... and {count - MAX_TILES} more" if count > MAX_TILES else None


def sheet(tiles: Sequence[Tile], title: str) -> Image.Image:
    """The contact sheet of `tiles` (the first MAX_TILES), titled with the count; never empty of meaning:
    no tiles give a small sheet that says so. Its text lines are also in `.info` (Title, Description)."""
    shown = tiles[:MAX_TILES]
    head = title_line(len(tiles), title)
    foot = more_line(len(tiles)) if tiles else "nothing here"
    columns = min(COLUMNS, len(shown))
    rows = math.ceil(len(shown) / COLUMNS)
    text_w = max(len(head), len(foot or "")) * CHAR_W + 2 * PAD
    width = max(PAD + columns * CELL_W, text_w)
    grid_top = PAD + LINE_H + PAD
    height = grid_top + rows * CELL_H + (LINE_H + PAD if foot else 0)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.text((PAD, PAD), head, fill=TEXT, font=FONT)
    for i, tile in enumerate(shown):
        x, y = PAD + (i % COLUMNS) * CELL_W, grid_top + (i // COLUMNS) * CELL_H
        img.paste(thumbnail(tile.path), (x, y))
        for j, line in enumerate(tile.caption.split("\n")[:CAPTION_LINES]):
            draw.text((x, y + TILE + 1 + j * LINE_H), shorten(line), fill=TEXT, font=FONT)
    if foot:
        draw.text((PAD, grid_top + rows * CELL_H), foot, fill=TEXT, font=FONT)
    img.info = {"Title": head, "Description": foot or ""}
    return img


def save_png(img: Image.Image, path: Path) -> None:
    """Atomically, with the sheet's text lines as PNG text chunks (no time stamp: same image, same bytes)."""
    info = PngInfo()
    for key in ("Title", "Description"):
        info.add_text(key, img.info.get(key, ""))
    with atomic_open(path, "wb") as f:
        img.save(f, format="PNG", pnginfo=info)


def write_sheets(report_rows: Iterable[dict], out_dir: Path, root: Path = Path(".")) -> dict[str, int]:
    """Write the four sheets (SHEETS) of clean's report rows into out_dir, every one even when empty;
    image paths are relative to `root`. Returns each sheet's image count."""
    groups: dict[str, list[Tile]] = {name: [] for name in SHEETS}
    for row in report_rows:
        groups[sheet_of(row)].append(tile_of(row, root))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, tiles in groups.items():
        save_png(sheet(tiles, SHEETS[name]), out_dir / f"{name}.png")
    return {name: len(tiles) for name, tiles in groups.items()}
