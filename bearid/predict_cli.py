"""`bearid predict <files or folders>`: class and probability per image, from the exported model.

A file that cannot be read or decoded gets its own error line (stderr, or an
"error" record with --json) and a non-zero exit; the other files still get
their predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator

import torch

from .images import SUFFIXES
from .predict import BadImage, Predictor


def expand(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders as their image files, recursively, in sorted order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bearid predict", description="Classify images with an exported model.")
    ap.add_argument("paths", nargs="+", type=Path, help="image files or folders of images")
    ap.add_argument("--model", type=Path, default=Path("data/retrain"),
                    help="exported model folder (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    ap.add_argument("--top-k", type=int, default=1, help="classes per file (default %(default)s)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        ap.error("--top-k and --batch-size must be >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        predictor = Predictor(args.model, threads=args.threads)
    except (OSError, ValueError, KeyError) as exc:
        print(f"bearid predict: cannot load the model in {args.model}: {exc}", file=sys.stderr)
        return 2

    def report(path: Path, record: dict) -> None:
        if args.json:
            print(json.dumps({"path": str(path), **record}), flush=True)
        elif "error" in record:
            print(f"{path}: error: {record['error']}", file=sys.stderr, flush=True)
        else:
            text = ", ".join(f"{p['label']} {p['probability']:.4f}" for p in record["predictions"])
            print(f"{path}\t{text}", flush=True)

    batch: list[tuple[Path, torch.Tensor | str]] = []  # an input tensor, or why there is none

    def flush() -> None:
        """Predict the batch's readable images in one pass; report every file in the order given."""
        inputs = [x for _, x in batch if isinstance(x, torch.Tensor)]
        probs = iter(predictor.forward(torch.stack(inputs)) if inputs else [])
        for path, x in batch:
            if isinstance(x, str):
                report(path, {"error": x})
            else:
                top = predictor.top_k(next(probs), args.top_k)
                report(path, {"predictions": [{"label": label, "probability": p} for label, p in top]})
        batch.clear()

    seen = failed = 0
    for path in expand(args.paths):
        seen += 1
        try:
            batch.append((path, predictor.decode(path.read_bytes())))
        except OSError as exc:
            failed += 1
            batch.append((path, f"cannot read: {exc.strerror or exc}"))
        except BadImage as exc:
            failed += 1
            batch.append((path, str(exc)))
        if len(batch) == args.batch_size:
            flush()
    flush()
    if not seen:
        print("bearid predict: no image files in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 1
    return 1 if failed else 0
