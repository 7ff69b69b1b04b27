"""The embedding out-of-place score with the head's feature map pooled by its mean and by its maximum.

Draws colour-varied demo worlds (`bearid.demo.make_items`: the digits and photo
crops the download stage would fetch, at the real-photo preset's 128 px, with
params.yaml's 8% mislabeled and 3% out of place), leaves out the bad files and
the exact copies (verify drops them), embeds every image with each pooling and
scores it with `knn_out_of_place` at params.yaml's `interpret.knn_k`. Per world
and in all: the crops at the preset's flag (`interpret.ood_threshold` 0.7) or
above, the crops in the score's own top n, and the good images (digits under
their own label) at 0.7 and at 0.8. The anchor is the mean, the pooling the
ImageNet classifier uses; the ratio is max over mean. All images count, not
only the train and valid ones, so the counts run about 15% above the pipeline's.

    python benchmarks/ood_pooling.py                  # seeds 0 to 8, about 3 minutes on 2 cores
    python benchmarks/ood_pooling.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bearid import embeddings, presets  # noqa: E402
from bearid.demo import make_items  # noqa: E402
from bearid.params import DemoParams  # noqa: E402

KEPT = ("none", "mislabeled", "out_of_place")  # what verify lets through, copies aside


def world(seed: int, params: dict, out: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """One colour-varied world of params.yaml's demo, its images written under `out`: paths, given labels
    and faults."""
    demo = replace(DemoParams(**params["fetch"]["demo"]), colours="varied", seed=seed,
                   img_size=presets.REAL_PHOTOS["train"]["img_size"])
    items = [it for it in make_items(params["fetch"]["classes"], demo) if it.fault in KEPT]
    paths = []
    for i, item in enumerate(items):
        paths.append(out / f"{seed}-{i}{item.ext}")
        paths[-1].write_bytes(item.data)
    return paths, np.array([it.listed_class for it in items]), np.array([it.fault for it in items])


def counts(score: np.ndarray, fault: np.ndarray, flag: float) -> np.ndarray:
    """Crops at the flag, crops in the top n, good images at the flag and at 0.8, and the totals."""
    crop, good = fault == "out_of_place", fault == "none"
    top = np.argsort(-score, kind="stable")[:crop.sum()]
    return np.array([(score[crop] >= flag).sum(), crop[top].sum(), crop.sum(),
                     (score[good] >= flag).sum(), (score[good] >= 0.8).sum(), good.sum()])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(9)), help="demo seeds (default 0 to 8)")
    args = parser.parse_args(argv)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    k, size = params["interpret"]["knn_k"], params["interpret"]["embed_size"]
    flag = presets.REAL_PHOTOS["interpret"]["ood_threshold"]
    total = {pool: np.zeros(6, dtype=int) for pool in embeddings.POOLS}
    print(f"colour-varied demo at {presets.REAL_PHOTOS['train']['img_size']} px, knn_k {k}, embedded at {size} px, flag {flag}")
    print("seed  pool  crops>=flag  crops in top n  good>=flag  good>=0.8")
    with tempfile.TemporaryDirectory(prefix="bearid-ood-") as tmp:
        for seed in args.seeds:
            paths, labels, fault = world(seed, params, Path(tmp))
            for pool in embeddings.POOLS:
                emb = embeddings.embed(paths, size, 64, pool=pool)
                c = counts(embeddings.knn_out_of_place(emb, labels, k), fault, flag)
                total[pool] += c
                print(f"{seed:4d}  {pool:4s}  {c[0]:5d} of {c[2]:<4d}  {c[1]:8d} of {c[2]:<4d}  "
                      f"{c[3]:4d} of {c[5]:<4d}  {c[4]:4d}", flush=True)
            for p in paths:
                p.unlink()
    avg, mx = total["avg"], total["max"]
    for pool, c in total.items():
        print(f"all   {pool:4s}  {c[0]:5d} of {c[2]:<4d}  {c[1]:8d} of {c[2]:<4d}  "
              f"{c[3]:4d} of {c[5]:<4d} ({c[3] / c[5]:.1%})  {c[4]:4d}")
    print(f"max / mean (the anchor): crops at the flag x{mx[0] / max(avg[0], 1):.2f}, "
          f"crops in the top n x{mx[1] / max(avg[1], 1):.2f}, good images at the flag x{mx[3] / max(avg[3], 1):.2f}")


if __name__ == "__main__":
    main()
