"""The train stage against the plain fastai script it wraps, on the same data and params.

The anchor is the lesson's code and nothing else: DataBlock, vision_learner,
fit_one_cycle frozen, unfreeze, lr_find, fit_one_cycle with slice(suggestion,
lr/10). Ours adds DVCLive logging, history, the LR-finder plot, the diagnosis
and the safetensors export. Each runs in a fresh interpreter (imports included,
as `dvc repro` pays them), alternating, `--repeat` times; medians are compared.

    python benchmarks/train.py [--manifest data/manifest.csv] [--repeat 1]

Needs the demo's data/images and data/manifest.csv (`dvc repro split`).
Target: ratio ours / plain <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.10

OURS = """
import sys
from pathlib import Path
from bearid import params
from bearid.training import train_run
p = params.load("train")
train_run(Path(sys.argv[1]), p, Path(sys.argv[2]), "train")
"""

PLAIN = """
import sys
import pandas as pd, torch
from fastai.vision.all import *
from bearid import params
p = params.load("train")
set_seed(p.seed, reproducible=True)
df = pd.read_csv(sys.argv[1])
df = df[df.split != "test"].assign(is_valid=lambda d: d.split == "valid")
dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("path", pref="./"),
                get_y=ColReader("label"), splitter=ColSplitter("is_valid"),
                item_tfms=Resize(p.img_size, method=ResizeMethod.Squish),
                batch_tfms=[*(aug_transforms(**p.aug) if p.augment else []),
                            Normalize.from_stats(*imagenet_stats)]
                ).dataloaders(df, bs=p.batch_size, num_workers=0, device=torch.device("cpu"))
learn = vision_learner(dls, resnet18, pretrained=False, metrics=[error_rate, accuracy],
                       wd=p.wd, ps=p.ps, path=Path(sys.argv[2]))
learn.remove_cb(ProgressCallback)
learn.freeze()
learn.fit_one_cycle(p.freeze_epochs, p.lr)
learn.unfreeze()
suggested = learn.lr_find(num_it=p.lr_find_iters, show_plot=False).valley
learn.fit_one_cycle(p.epochs, slice(min(suggested, p.lr / 10), p.lr / 10))
"""


def timed(script: str, manifest: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, str(manifest), str(out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=Path("data/manifest.csv"))
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if not (ROOT / args.manifest).is_file():
        sys.exit(f"benchmark: {args.manifest} not found: run `dvc repro split` first")
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="bearid-bench-") as tmp:
        for i in range(args.repeat):
            times["plain"].append(timed(PLAIN, args.manifest, Path(tmp) / f"plain{i}"))
            times["ours"].append(timed(OURS, args.manifest, Path(tmp) / f"ours{i}"))
    plain, ours = statistics.median(times["plain"]), statistics.median(times["ours"])
    print(f"{'run':<8}{'median s':>10}  all runs")
    for name, values in times.items():
        print(f"{name:<8}{statistics.median(values):>10.1f}  {', '.join(f'{v:.1f}' for v in values)}")
    print(f"ratio ours/plain {ours / plain:.3f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
