"""Assign each image to train, valid or test by a seeded hash of its name.

An image's split depends only on the seed and its own (content-hash) name, so
adding images never moves existing ones; per class the shares match
valid_pct / test_pct in expectation, which is what stratification asks.
Near-duplicates (verify's `group`) take the split of their group's first image,
so that no copy of a training image sits in valid or test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .atomic import read_csv, write_csv
from .errors import ParamsError
from .vocab import MANIFEST_FIELDS



def unit_hash(name: str, seed: int) -> float:
    """A number in [0, 1), uniform over names, fixed for a (name, seed) pair."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(name: str, valid_pct: float, test_pct: float, seed: int) -> str:
    u = unit_hash(name, seed)
    return "test" if u < test_pct else "valid" if u < test_pct + valid_pct else "train"


def near_duplicate_groups(verify_csv: Path) -> dict[str, str]:
    """Image path -> the name its split is decided by: its group's first image, if grouped."""
    if not verify_csv.is_file():
        return {}
    return {r["path"]: Path(r["group"]).stem for r in read_csv(verify_csv)
            if r.get("group") and r.get("path")}


def make_manifest(image_dir: Path, classes: list[str], valid_pct: float, test_pct: float,
                  seed: int, out: Path, groups: dict[str, str] | None = None) -> list[dict]:
    """One row per image under image_dir/<class>/, sorted, written as CSV."""
    groups = groups or {}
    rows = []
    for cls in classes:
        for f in sorted((image_dir / cls).glob("*.jpg")):
            key = groups.get(f.as_posix(), f.stem)
            rows.append({"path": f.as_posix(), "label": cls,
                         "split": assign(key, valid_pct, test_pct, seed)})
    for cls in classes:
        splits = {r["split"] for r in rows if r["label"] == cls}
        if not {"train", "valid"} <= splits:
            raise ParamsError(f"split: class {cls!r} has no images in {sorted({'train', 'valid'} - splits)}; "
                             "add images or change split.valid_pct / split.seed")
    if not any(r["split"] == "test" for r in rows):
        raise ParamsError(f"split: no image fell into the test split ({len(rows)} images, "
                          f"split.test_pct={test_pct:g}); the evaluate stage needs some: raise split.test_pct")
    write_csv(out, rows, MANIFEST_FIELDS)
    return rows
