"""train: the lesson's two-phase fine-tuning on the manifest."""

from pathlib import Path

from bearid import params
from bearid.training import train_run

train_run(Path("data/manifest.csv"), params.load("train"), Path("data/train"), "train")
