"""retrain: the same training on the cleaned manifest; the final model."""

from pathlib import Path

from bearid import params, runner
from bearid.training import train_run


def main() -> None:
    p = params.load("retrain")  # train's settings, with retrain's non-null keys
    params.check_size("retrain.img_size" if p.img_size != params.load("train").img_size else "train.img_size",
                      p.img_size)
    train_run(Path("data/clean/manifest.csv"), p, Path("data/retrain"), "retrain")


if __name__ == "__main__":
    runner.run("retrain", main)
