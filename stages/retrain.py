"""retrain: the same training on the cleaned manifest; the final model."""

from pathlib import Path

from bearid import params, stage
from bearid.training import train_run


def main() -> None:
    retrain = params.load("retrain")
    p = retrain.apply(params.load("train"))
    key = "retrain.overrides.img_size" if "img_size" in retrain.overrides else "train.img_size"
    params.check_size(key, p.img_size)
    train_run(Path("data/clean/manifest.csv"), p, Path("data/retrain"), "retrain")


if __name__ == "__main__":
    stage.run("retrain", main)
