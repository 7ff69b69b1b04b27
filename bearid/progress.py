"""Progress that reads well in both places a stage runs.

On a terminal: a tqdm bar. Under `dvc repro` logs or CI (not a TTY): one plain
line per tenth of the work, so logs stay short and readable.
"""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def log(stage: str, message: str) -> None:
    print(f"{stage}: {message}", flush=True)


def track(items: Iterable[T], total: int, stage: str, unit: str = "files") -> Iterator[T]:
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=stage, unit=unit[:-1] if unit.endswith("s") else unit)
        return
    step = max(1, -(-total // 10))
    done = 0
    for item in items:
        yield item
        done += 1
        if done % step == 0 or done == total:
            log(stage, f"{done}/{total} {unit}")
