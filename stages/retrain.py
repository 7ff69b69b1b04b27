"""retrain: the same training on the cleaned manifest; the final model."""

from pathlib import Path

from bearid import params
from bearid.training import train_run

p = params.load("retrain").apply(params.load("train"))
train_run(Path("data/clean/manifest.csv"), p, Path("data/retrain"), "retrain")
