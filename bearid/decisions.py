"""The decisions file: a person's keep / delete / relabel choices, the one parser and writer.

It is git-tracked and edited by hand, in spreadsheets and by the review page, so
reading is forgiving where no meaning is lost (a byte-order mark, header case,
spaces around a cell, extra columns such as a `note`) and strict where guessing
would lose or change a decision (a missing header column, a byte that is not
UTF-8, two rows giving one image different decisions). Errors name the line as
an editor shows it. Extra columns and a byte-order mark survive a rewrite.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_text
from .errors import DecisionsError
from .vocab import ACTIONS

REQUIRED = ("path", "action")
FIELDS = ["path", "action", "label"]
BOM = "\ufeff"


@dataclass
class Decisions:
    """Rows by image path, plus what a rewrite must keep: the column order, extra columns, the BOM."""
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=lambda: list(FIELDS))
    bom: bool = False

    def get(self, path: str) -> dict[str, str] | None:
        return self.rows.get(path)

    def set(self, path: str, action: str, label: str) -> dict[str, str]:
        """Record a decision, keeping the row's extra columns; return the row."""
        row = self.rows.setdefault(path, {f: "" for f in self.fields} | {"path": path})
        row.update(action=action, label=label if action == "relabel" else "")
        return row

    def forget(self, path: str) -> bool:
        return self.rows.pop(path, None) is not None


def decode(data: bytes, path: Path) -> tuple[str, bool]:
    """The file's text and whether it began with a BOM; a non-UTF-8 byte is an error naming its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DecisionsError(f"{path}:{line}: byte 0x{data[e.start]:02x} is not UTF-8; "
                             "save the file as UTF-8 (a spreadsheet's 'CSV UTF-8')") from None
    return (text[1:], True) if text.startswith(BOM) else (text, False)


def header_fields(cells: list[str], where: str) -> list[str]:
    names = [c.strip().lower() for c in cells]
    missing = [r for r in REQUIRED if r not in names]
    if missing:
        raise DecisionsError(f"{where}: header {cells} lacks {missing}; the first line must name the "
                             f"columns, e.g. {','.join(FIELDS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DecisionsError(f"{where}: header {cells} repeats the columns {repeated}")
    if "" in names:
        raise DecisionsError(f"{where}: header {cells} has a column without a name")
    return names if "label" in names else [*names, "label"]


def check_row(row: dict[str, str], where: str, classes: list[str] | None) -> None:
    if not row["path"]:
        raise DecisionsError(f"{where}: empty path")
    if row["action"] not in ACTIONS:
        raise DecisionsError(f"{where}: unknown action {row['action']!r}; one of {list(ACTIONS)}")
    if row["action"] == "relabel" and classes is not None and row["label"] not in classes:
        raise DecisionsError(f"{where}: relabel to unknown class {row['label']!r}; one of {classes}")


def parse(text: str, path: Path, classes: list[str] | None = None) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The columns and the rows by path; line numbers count blank lines and quoted newlines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    fields: list[str] | None = None
    rows: dict[str, dict[str, str]] = {}
    first_line: dict[str, int] = {}
    end = 0
    for cells in reader:
        start, end = end + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue
        where = f"{path}:{start}"
        if fields is None:
            fields = header_fields(cells, where)
            continue
        if len(cells) > len(fields):
            raise DecisionsError(f"{where}: {len(cells)} cells, more than the header's {len(fields)} columns")
        row = {f: "" for f in fields} | {f: c.strip() for f, c in zip(fields, cells)}
        row["action"] = row["action"].lower()
        check_row(row, where, classes)
        earlier = rows.get(row["path"])
        if earlier and (earlier["action"], earlier["label"]) != (row["action"], row["label"]):
            raise DecisionsError(f"{where}: {row['path']} decided again, differently from line "
                                 f"{first_line[row['path']]}; delete one of the two rows")
        rows.setdefault(row["path"], row)
        first_line.setdefault(row["path"], start)
    return fields or list(FIELDS), rows


def read(path: Path | str, classes: list[str] | None = None) -> Decisions:
    """The decisions in `path`; a missing or empty file means none yet. Raises DecisionsError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Decisions()
    except OSError as e:
        raise DecisionsError(f"{path}: cannot read: {e.strerror}") from None
    text, bom = decode(data, path)
    fields, rows = parse(text, path, classes)
    return Decisions(rows, fields, bom)


def write(path: Path | str, decisions: Decisions) -> None:
    """Rewrite the whole file atomically, in its own column order, extra columns and BOM kept."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=decisions.fields, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(decisions.rows.values())
    atomic_write_text(path, (BOM if decisions.bom else "") + buf.getvalue())
