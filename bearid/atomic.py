"""Atomic writes, the project's only way of writing a file: a temp file in the target's folder, then a rename.

A process killed mid-write leaves the old file or none, never half a file; a
temp file it leaves behind starts with a dot and ends in `.tmp`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes a file only its owner may read; a published file gets the mode `open` would give it.
# Read once, at import: setting the umask to read it is not safe while other threads create files.
FILE_MODE = 0o666 & ~_umask()


class TempFile:
    """A new binary file in `folder` under a temp name, until `publish` names it.

    `fsync=False` where a later step hashes the files anyway (DVC after a stage)
    and a sync per file would cost more than the write. Used as a context
    manager, an unpublished temp file is removed on the way out.
    """

    def __init__(self, folder: Path, prefix: str = ".", fsync: bool = True):
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
        os.fchmod(fd, FILE_MODE)
        self.path, self.file, self.fsync = Path(name), os.fdopen(fd, "wb"), fsync
        self.published = False

    def publish(self, target: Path, overwrite: bool = True) -> None:
        """Give the written file its name; with overwrite=False, FileExistsError if the name is taken."""
        self.file.flush()
        if self.fsync:
            os.fsync(self.file.fileno())
        self.file.close()
        if overwrite:
            os.replace(self.path, target)
            self.published = True  # the temp name is free again: never unlink it now
        else:
            os.link(self.path, target)

    def discard(self) -> None:
        self.file.close()
        if not self.published:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """A file object ("wb" or "w", UTF-8) whose content replaces `path` only if the block succeeds."""
    path = Path(path)
    with TempFile(path.parent, prefix=f".{path.name}.", fsync=fsync) as tmp:
        if "b" in mode:
            yield tmp.file
        else:
            text = io.TextIOWrapper(tmp.file, encoding="utf-8", newline="")
            yield text
            text.flush()
            text.detach()
        tmp.publish(path)


def atomic_write_bytes(path: Path | str, data: bytes | memoryview, fsync: bool = True) -> None:
    with atomic_open(path, "wb", fsync) as f:
        f.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path | str, rows: Iterable[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path | str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
