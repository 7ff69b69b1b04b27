"""train: the lesson's two-phase fine-tuning on the manifest."""

from pathlib import Path

from bearid import params, runner
from bearid.training import train_run


def main() -> None:
    train_run(Path("data/manifest.csv"), params.load("train"), Path("data/train"), "train")


if __name__ == "__main__":
    runner.run("train", main)
