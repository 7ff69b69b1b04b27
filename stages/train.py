"""train: the lesson's two-phase fine-tuning on the manifest."""

from pathlib import Path

from bearid import params, runner
from bearid.training import train_run


def main() -> None:
    p = params.load("train")
    params.check_size("train.img_size", p.img_size)
    train_run(Path("data/manifest.csv"), p, Path("data/train"), "train")


if __name__ == "__main__":
    runner.run("train", main)
