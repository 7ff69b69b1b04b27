"""crossval: out-of-sample probabilities for every train/valid image from K fold models."""

import time
from pathlib import Path

from bearid import params, runner
from bearid.crossval import FoldParams, crossval, fold_train
from bearid.progress import log


def main() -> None:
    p = params.load("crossval")
    params.check_size("crossval.img_size", p.img_size)
    train = fold_train(params.load("train"), p.img_size)
    start = time.perf_counter()
    m = crossval(Path("data/manifest.csv"), FoldParams(p.folds, p.epochs, p.lr, train, p.feature_probe), Path("data/crossval"))
    log("crossval", f"{p.folds} folds in {time.perf_counter() - start:.0f}s: held-out accuracy {m['accuracy']:.4f} "
                    "(against the given, partly wrong, labels)")


if __name__ == "__main__":
    runner.run("crossval", main)
