"""Transfer learning on the demo: the packaged ImageNet EfficientNet-Lite0 body against today's
from-scratch resnet18, and the train stage against a plain fastai script with the same weights.

For each image size and demo size (images per class; 0 = all), a fresh clone of
this repository runs `dvc repro split` with the demo at that size (and
`verify.max_size` to match), then the train stage (`train_run`, in a fresh
interpreter, imports included) trains with params.yaml's `train` section:

    scratch     as params.yaml (resnet18, pretrained false)
    pretrained  arch efficientnet_lite0, pretrained true, lr --pretrained-lr (the lesson's 3e-3)

with the same schedule and epochs. Each model's error is on the test split
against the demo's ground truth (true labels; out-of-place images left out).
Then, at the first size, the plain fastai script (DataBlock, vision_learner with
fastai's timm body, the same packaged weights, the lesson's schedule, the stage's
optimizer: PyTorch's fused AdamW with fastai Adam's hyper-parameters) runs
against the train stage with the pretrained settings: ratio of times,
difference of errors (target: ratio <= 1.10, errors within 1 point).

    python benchmarks/transfer.py                          # 64 px, 30 per class and all
    python benchmarks/transfer.py --sizes 64 128 --per-class 30 0
    python benchmarks/transfer.py --threads 1   # on a CPU shared with other work: one torch thread each
    python benchmarks/transfer.py --per-class 30 --bodies pretrained   # only the train stage against plain fastai
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_RATIO, TARGET_POINTS = 1.10, 1.0

OURS = """
import json, sys
from pathlib import Path
import yaml
from bearid import params
from bearid.training import train_run
train = yaml.safe_load(open("params.yaml"))["train"]
p = params.parse("train", {**train, **json.loads(sys.argv[1])})
train_run(Path("data/manifest.csv"), p, Path(sys.argv[2]), "train")
"""

PLAIN = """
import json, sys
import numpy as np, pandas as pd, torch, yaml
from fastai.vision.all import *
from bearid.pretrained import stats, timm_state_dict
t = {**yaml.safe_load(open("params.yaml"))["train"], **json.loads(sys.argv[1])}
set_seed(t["seed"], reproducible=True)
df = pd.read_csv("data/manifest.csv")
df = df[df.split != "test"].assign(is_valid=lambda d: d.split == "valid")
dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("path", pref="./"),
                get_y=ColReader("label"), splitter=ColSplitter("is_valid"),
                item_tfms=Resize(t["img_size"], method=ResizeMethod.Squish),
                batch_tfms=[*(aug_transforms(**t["aug"]) if t["augment"] else []),
                            Normalize.from_stats(*stats(t["arch"]))]
                ).dataloaders(df, bs=t["batch_size"], num_workers=0, device=torch.device("cpu"))
opt = partial(OptimWrapper, opt=torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-5, fused=True)  # the stage's optimizer
learn = vision_learner(dls, t["arch"], pretrained=False, normalize=False, metrics=[error_rate, accuracy],
                       wd=t["wd"], ps=t["ps"], path=Path(sys.argv[2]), opt_func=opt)
learn.model[0].model.load_state_dict({k: v for k, v in timm_state_dict(t["arch"]).items()
                                      if not k.startswith("classifier.")})
learn.remove_cb(ProgressCallback)
learn.freeze()
learn.fit_one_cycle(t["freeze_epochs"], t["lr"])
learn.unfreeze()
suggested = learn.lr_find(num_it=t["lr_find_iters"], show_plot=False).valley
learn.fit_one_cycle(t["epochs"], slice(min(suggested, t["lr"] / 10), t["lr"] / 10))
test = pd.read_csv("data/manifest.csv").query("split == 'test'")
probs, _ = learn.get_preds(dl=dls.test_dl(test, with_labels=False))
Path(sys.argv[2], "test_predictions.json").write_text(json.dumps(
    dict(zip(test["path"], [dls.vocab[i] for i in probs.argmax(1).tolist()]))))
"""


THREADS: dict[str, str] = {}  # --threads: OMP_NUM_THREADS for the training interpreters


def sh(cmd: list[str], cwd: Path, env: dict | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env={**(env or os.environ), **THREADS})


def prepare(tmp: Path, size: int, per_class: int) -> Path:
    """A clone of this repository with the demo's data up to `split` at the given size."""
    repo = tmp / f"demo-{size}px-{per_class or 'all'}"
    sh(["git", "clone", "-q", str(ROOT), str(repo)], tmp)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["fetch"]["demo"].update(img_size=size, per_class=per_class)
    params["verify"]["max_size"] = size
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    sh(["dvc", "repro", "-q", "split"], repo, env)
    return repo


def true_label_error(repo: Path, predicted: dict[str, str]) -> tuple[float, int]:
    """Test error against the demo's ground truth, over test images that have a true class."""
    from bearid.evaluate import truth_by_stem

    truth = truth_by_stem(repo / "data" / "web" / "ground_truth.csv")
    known = [(truth[Path(p).stem]["true_class"], label) for p, label in predicted.items()
             if truth.get(Path(p).stem, {}).get("true_class")]
    assert known, f"{repo}: no test image with a true class"
    return sum(t != p for t, p in known) / len(known), len(known)


def ours(repo: Path, overrides: dict, out: str) -> tuple[float, float, int]:
    """(seconds, true-label test error, test images) of the train stage with these overrides."""
    from bearid.atomic import read_csv
    from bearid.predict import Predictor

    start = time.perf_counter()
    sh([sys.executable, "-c", OURS, json.dumps(overrides), out], repo)
    seconds = time.perf_counter() - start
    test = [r["path"] for r in read_csv(repo / "data" / "manifest.csv") if r["split"] == "test"]
    predictor = Predictor(repo / out)
    labels = [predictor.classes[i] for i in predictor.predict_files([repo / p for p in test]).argmax(1)]
    return (seconds, *true_label_error(repo, dict(zip(test, labels))))


def plain(repo: Path, overrides: dict, out: str) -> tuple[float, float, int]:
    start = time.perf_counter()
    sh([sys.executable, "-c", PLAIN, json.dumps(overrides), out], repo)
    seconds = time.perf_counter() - start
    predicted = json.loads((repo / out / "test_predictions.json").read_text())
    return (seconds, *true_label_error(repo, predicted))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--per-class", type=int, nargs="+", default=[30, 0], help="demo images per class; 0 = all")
    ap.add_argument("--pretrained-lr", type=float, default=3e-3)
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--bodies", nargs="+", choices=["scratch", "pretrained"], default=["scratch", "pretrained"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads per training run (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        THREADS["OMP_NUM_THREADS"] = str(args.threads)
    configs = {"scratch": {}, "pretrained": {"arch": "efficientnet_lite0", "pretrained": True,
                                             "lr": args.pretrained_lr}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bearid-transfer-") as tmp:
        for size in args.sizes:
            for per_class in args.per_class:
                repo = prepare(Path(tmp), size, per_class)
                for name in args.bodies:
                    overrides = configs[name]
                    seconds, error, n = ours(repo, {**overrides, "img_size": size}, f"out-{name}")
                    rows.append((f"{size}px", per_class or "all", name, "train stage", seconds, error, n))
                    print(*rows[-1], flush=True)
                if not args.skip_plain and size == args.sizes[0] and per_class == args.per_class[-1] \
                        and "pretrained" in args.bodies:
                    pre = {**configs["pretrained"], "img_size": size}
                    seconds, error, n = plain(repo, pre, "out-plain")
                    rows.append((f"{size}px", per_class or "all", "pretrained", "plain fastai", seconds, error, n))
                    print(*rows[-1], flush=True)
    print("\n| size | per class | body | run | seconds | true-label test error | test images |")
    print("|---|---|---|---|---|---|---|")
    for size, per, name, run, seconds, error, n in rows:
        print(f"| {size} | {per} | {name} | {run} | {seconds:.1f} | {error:.3f} | {n} |")
    stage = {(r[0], r[1], r[2]): r for r in rows if r[3] == "train stage"}
    for size, per, name, run, seconds, error, n in rows:
        if run == "plain fastai":
            ours_row = stage[(size, per, name)]
            print(f"\ntrain stage / plain fastai ({size}, {per} per class, pretrained): time ratio "
                  f"{ours_row[4] / seconds:.3f} (target <= {TARGET_RATIO}), error difference "
                  f"{100 * (ours_row[5] - error):+.1f} points (target within {TARGET_POINTS:g})")
    for key in {(r[0], r[1]) for r in rows}:
        s, p = stage.get((*key, "scratch")), stage.get((*key, "pretrained"))
        if s and p:
            print(f"{key[0]}, {key[1]} per class: pretrained / scratch time {p[4] / s[4]:.2f}, "
                  f"error {100 * (p[5] - s[5]):+.1f} points")


if __name__ == "__main__":
    main()
