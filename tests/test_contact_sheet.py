"""contact_sheet.py: one grid of thumbnails per cleaning reason, always written, same inputs same bytes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from bearid import contact_sheet as cs
from bearid.vocab import MISLABELED, OUT_OF_PLACE


def image(path: Path, size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def tiles(tmp_path: Path, n: int) -> list[cs.Tile]:
    src = image(tmp_path / "img" / "a.png", (150, 60))
    return [cs.Tile(src, f"a{i}\nthree -> drop") for i in range(n)]


def grid_size(n: int) -> tuple[int, int]:
    """The columns and rows a sheet of n images shows: the grid, not the image's width, is what the tests pin."""
    shown = min(n, cs.MAX_TILES)
    return min(cs.COLUMNS, shown), math.ceil(shown / cs.COLUMNS)


@pytest.mark.parametrize("n", [1, 3, cs.COLUMNS, cs.COLUMNS + 1, cs.MAX_TILES])
def test_grid_grows_with_the_count(tmp_path, n):
    img = cs.sheet(tiles(tmp_path, n), "t")
    columns, rows = grid_size(n)
    top = cs.PAD + cs.LINE_H + cs.PAD
    assert img.height == top + rows * cs.CELL_H
    assert img.width == max(cs.PAD + columns * cs.CELL_W, len(cs.title_line(n, "t")) * cs.CHAR_W + 2 * cs.PAD)
    assert img.info == {"Title": f"t: {n} image{'s' * (n > 1)}", "Description": ""}
    # the last tile's thumbnail is drawn where the grid puts it: the red image, centred in its box
    i = n - 1
    x, y = cs.PAD + (i % cs.COLUMNS) * cs.CELL_W, top + (i // cs.COLUMNS) * cs.CELL_H
    assert img.getpixel((x + cs.TILE // 2, y + cs.TILE // 2)) == (200, 40, 40)
    assert img.getpixel((x + cs.TILE // 2, y + 2)) == cs.TILE_BACKGROUND  # 150x60 -> 96x38: bands above, below


def test_more_than_max_tiles_shows_the_first_and_says_how_many_more(tmp_path):
    n = cs.MAX_TILES + 5
    img = cs.sheet(tiles(tmp_path, n), "dropped")
    full = cs.sheet(tiles(tmp_path, cs.MAX_TILES), "dropped")
    assert img.info == {"Title": f"dropped: {n} images", "Description": "... and 5 more"}
    assert img.height == full.height + cs.LINE_H + cs.PAD  # the same grid, one line of text below
    note = img.crop((0, full.height, img.width, img.height))
    assert note.getcolors() is not None and len(note.getcolors()) > 1  # the line is drawn, not blank


def test_empty_sheet_says_so(tmp_path):
    img = cs.sheet([], "relabelled by a person")
    assert img.info == {"Title": "relabelled by a person: 0 images", "Description": "nothing here"}
    assert img.height == cs.PAD + cs.LINE_H + cs.PAD + cs.LINE_H + cs.PAD < cs.CELL_H
    assert len(img.getcolors()) > 1


def test_small_image_is_centred_not_enlarged(tmp_path):
    thumb = cs.thumbnail(image(tmp_path / "s.png", (10, 20), (0, 0, 255)))
    assert thumb.size == (cs.TILE, cs.TILE)
    blue = [(x, y) for x in range(cs.TILE) for y in range(cs.TILE) if thumb.getpixel((x, y)) == (0, 0, 255)]
    assert len(blue) == 10 * 20
    assert min(blue) == ((cs.TILE - 10) // 2, (cs.TILE - 20) // 2)


@pytest.mark.parametrize("make, error", [
    (lambda p: None, "FileNotFoundError"),
    (lambda p: p.write_bytes(b"not an image"), "UnidentifiedImageError"),
    (lambda p: p.write_bytes(Path(image(p.with_suffix(".x.png"), (80, 80))).read_bytes()[:60]), "OSError"),
])
def test_unreadable_image_gets_a_placeholder_naming_the_error(tmp_path, capsys, make, error):
    path = tmp_path / "bad.png"
    make(path)
    img = cs.sheet([cs.Tile(path, "bad\nfive -> drop"), *tiles(tmp_path, 1)], "t")
    top = cs.PAD + cs.LINE_H + cs.PAD
    assert img.getpixel((cs.PAD + cs.TILE - 2, top + cs.TILE - 2)) == cs.PLACEHOLDER
    assert img.getpixel((cs.PAD + cs.CELL_W + cs.TILE // 2, top + cs.TILE // 2)) == (200, 40, 40)  # next one fine
    assert f"cannot read {path}: {error}" in capsys.readouterr().out


def report_row(path: str, label: str, action: str, by: str, reason: str, new_label: str = "") -> dict:
    return {"path": path, "label": label, "action": action, "new_label": new_label, "decided_by": by,
            "reason": reason}


def report(root: Path) -> list[dict]:
    """One row of each kind but a person's delete (an empty sheet), and one image that is missing."""
    for i in range(1, 4):
        image(root / f"data/images/five/{i}.png", (40 + 20 * i, 50), (30 * i, 100, 100))
    return [
        report_row("data/images/five/1.png", "five", "relabel", "human", "marked as mislabeled", "three"),
        report_row("data/images/five/2.png", "five", "delete", "policy",
                   f"{OUT_OF_PLACE}: out-of-place score 0.950 >= 0.8"),
        report_row("data/images/five/3.png", "five", "delete", "policy",
                   f"{MISLABELED}: top_losses score 3.000 >= 2.3 (model suggests three)"),
        report_row("data/images/five/gone.png", "five", "delete", "policy",
                   f"{OUT_OF_PLACE}: out-of-place score 0.900 >= 0.8"),
    ]


def test_write_sheets_writes_the_four_files_with_their_counts(tmp_path):
    out = tmp_path / "sheets"
    counts = cs.write_sheets(report(tmp_path), out, root=tmp_path)
    assert counts == {"policy_out_of_place": 2, "policy_mislabeled": 1, "human_delete": 0, "human_relabel": 1}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.png" for name in cs.SHEETS)
    for name, count in counts.items():
        with Image.open(out / f"{name}.png") as png:
            assert png.format == "PNG"
            assert png.text["Title"] == cs.title_line(count, cs.SHEETS[name])
            assert png.text["Description"] == ("" if count else "nothing here")
            assert png.width == max(cs.PAD + min(count, cs.COLUMNS) * cs.CELL_W, len(png.text["Title"]) * cs.CHAR_W + 2 * cs.PAD)


def test_same_report_same_bytes(tmp_path):
    rows = report(tmp_path)
    cs.write_sheets(rows, tmp_path / "one", root=tmp_path)
    cs.write_sheets(rows, tmp_path / "two", root=tmp_path)
    for name in cs.SHEETS:
        assert (tmp_path / "one" / f"{name}.png").read_bytes() == (tmp_path / "two" / f"{name}.png").read_bytes()
    rows[1], rows[3] = rows[3], rows[1]  # another order is another picture
    cs.write_sheets(rows, tmp_path / "three", root=tmp_path)
    assert ((tmp_path / "three/policy_out_of_place.png").read_bytes()
            != (tmp_path / "one/policy_out_of_place.png").read_bytes())


def test_caption_shows_the_change_and_fits_the_tile():
    delete = report_row("data/images/five/474f24e6745a74f3ab.jpg", "five", "delete", "policy", OUT_OF_PLACE)
    relabel = report_row("x/b.jpg", "grizzly", "relabel", "human", "marked as mislabeled", "teddy")
    assert cs.tile_of(delete).caption == "474f24e6745a74f3ab\nfive -> drop"
    assert cs.tile_of(relabel, Path("/r")) == cs.Tile(Path("/r/x/b.jpg"), "b\ngrizzly -> teddy")
    assert cs.shorten("474f24e6745a74f3ab") == "474f24e6745a74.." and len(cs.shorten("x" * 40)) * cs.CHAR_W <= cs.TILE


def test_a_row_no_sheet_shows_is_an_error():
    with pytest.raises(ValueError, match="report row a.jpg: no contact sheet for decided_by='policy'"):
        cs.write_sheets([report_row("a.jpg", "five", "delete", "policy", "some_new_reason")], Path("unused"))
