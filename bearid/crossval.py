"""Out-of-sample class probabilities for every train and valid image, by K-fold training.

A model ranks its own training images too kindly: it has learned their labels,
wrong ones included. Here each image is scored by a model that never saw it:
the train+valid images are split into K stratified folds, and for each fold a
fresh learner (the same `dataloaders`/`build_learner` as training) is fitted on
the other folds and predicts the held-out one. A few one-cycle epochs suffice:
the probabilities only need to rank images, not to win a benchmark.
Each fold model also measures how unlike its training images each held-out
image looks (`outliers.distance_ratio` of stem statistics): the appearance
column, for the out-of-place score.

With `feature_probe`, a logistic regression on pretrained features gives a
second held-out opinion per fold (`probe`), and probs.csv holds the mean of
the two; metrics.json records each one's accuracy and the pooled accuracy.

    out_dir/probs.csv     path, label, split, fold, appearance, prob_<class>...  (manifest order)
    out_dir/metrics.json  per-fold held-out accuracy against the given labels (no timings:
                          the same params and data give the same bytes)
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fastai.callback.core import Callback, CancelValidException
from fastai.callback.progress import ProgressCallback
from sklearn.model_selection import StratifiedKFold

from . import embeddings, pretrained, probe
from .atomic import write_csv, write_json
from .learner import build_learner, dataloaders, seed_everything
from .outliers import distance_ratio, stem_statistics
from .params import TrainParams
from .progress import log

PROB_PREFIX = "prob_"
APPEARANCE = "appearance"
PROBE_USE = pretrained.Use("crossval.feature_probe", "true", "false")
TRAIN_KEYS = ("arch", "pretrained", "batch_size", "seed")  # the train keys the folds follow (declared in dvc.yaml)
# The fold models' fixed training settings: plain, unaugmented one-cycle training on the CPU or GPU.
FOLD_SETTINGS = {"augment": False, "aug": {}, "wd": 0.01, "ps": 0.5, "device": "auto", "mixed_precision": "auto",
                 "channels_last": False, "num_workers": 0}


class NoValidation(Callback):
    """Fold models are judged once, on their held-out fold after training; per-epoch validation would only cost time."""

    def before_validate(self) -> None:
        raise CancelValidException()


def fold_train(train: TrainParams, img_size: int) -> TrainParams:
    """The settings a fold model trains with: train's TRAIN_KEYS, crossval's image size, FOLD_SETTINGS."""
    return dataclasses.replace(train, img_size=img_size, **FOLD_SETTINGS)


@dataclass(frozen=True)
class FoldParams:
    """What the folds are trained with: crossval's own keys plus the train keys it reads."""
    folds: int
    epochs: int
    lr: float
    train: TrainParams
    feature_probe: bool = False


def assign_folds(labels: list[str], k: int, seed: int) -> np.ndarray:
    """A fold number per image, stratified by label, seeded; classes too small for k folds still spread."""
    n_min = min(pd.Series(labels).value_counts())
    if n_min < k:  # StratifiedKFold would warn and may leave a class out of a fold's training set
        rng = np.random.default_rng(seed)
        return rng.permutation(np.arange(len(labels)) % k)
    folds = np.zeros(len(labels), dtype=int)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[held_out] = fold
    return folds


def fold_probs(rows: pd.DataFrame, held_out: np.ndarray, vocab: list[str], p: FoldParams,
               work_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Train on the rows not held out; return the held-out rows' probabilities (in `vocab` order)
    and appearance distance ratios."""
    seed_everything(p.train.seed)
    fold_df = rows.assign(split=np.where(held_out, "valid", "train"))
    dls = dataloaders(fold_df, p.train)
    if list(dls.vocab) != vocab:
        raise ValueError(f"fold classes {list(dls.vocab)} differ from the manifest's {vocab}")
    learn = build_learner(dls, p.train, work_dir)
    if not sys.stdout.isatty():
        learn.remove_cb(ProgressCallback)
        learn.logger = lambda row: None
    learn.fit_one_cycle(p.epochs, p.lr, cbs=[NoValidation()])
    dl = dls.test_dl(fold_df[held_out], with_labels=False)
    with learn.no_bar():
        probs, _ = learn.get_preds(dl=dl)
    reference = stem_statistics(learn.model, dls.test_dl(fold_df[~held_out], with_labels=False))
    appearance = distance_ratio(reference, stem_statistics(learn.model, dl))
    return probs.float().numpy(), appearance


def crossval(manifest_csv: Path, p: FoldParams, out_dir: Path) -> dict:
    """Write out-of-sample probabilities for the manifest's train+valid images; return the metrics."""
    manifest = pd.read_csv(manifest_csv)
    rows = manifest[manifest["split"].isin(["train", "valid"])].reset_index(drop=True)
    vocab = sorted(manifest["label"].unique())
    if len(vocab) < 2:
        raise ValueError(f"{manifest_csv}: cross-validation needs at least two classes, got {vocab}")
    folds = assign_folds(rows["label"].tolist(), p.folds, p.train.seed)
    given_all = np.array([vocab.index(label) for label in rows["label"]])
    probe_probs = None
    if p.feature_probe:  # first: missing weights stop the stage before any fold trains
        t0 = time.perf_counter()
        emb = embeddings.embed(rows["path"].tolist(), p.train.img_size, p.train.batch_size, PROBE_USE)
        probe_probs = probe.held_out_probs(emb, given_all, folds, len(vocab))
        log("crossval", f"feature probe on {len(rows)} images at {p.train.img_size}px: held-out accuracy "
                        f"{accuracy(probe_probs, given_all):.4f} ({time.perf_counter() - t0:.0f}s)")
    probs = np.zeros((len(rows), len(vocab)), dtype=np.float32)
    appearance = np.zeros(len(rows))
    metrics: dict = {"folds": []}
    with tempfile.TemporaryDirectory(prefix="bearid-cv-") as work_dir:
        for fold in range(p.folds):
            held_out = folds == fold
            t0 = time.perf_counter()
            probs[held_out], appearance[held_out] = fold_probs(rows, held_out, vocab, p, Path(work_dir))
            acc = accuracy(probs[held_out], given_all[held_out])
            metrics["folds"].append({"fold": fold, "images": int(held_out.sum()), "accuracy": acc})
            log("crossval", f"fold {fold + 1}/{p.folds}: trained on {int((~held_out).sum())}, "
                            f"held-out accuracy {acc:.4f} on {int(held_out.sum())} ({time.perf_counter() - t0:.0f}s)")
    if probe_probs is not None:
        metrics["fold_model_accuracy"] = accuracy(probs, given_all)
        metrics["probe_accuracy"] = accuracy(probe_probs, given_all)
        probs = probe.pool(probs, probe_probs).astype(np.float32)
    metrics["accuracy"] = accuracy(probs, given_all)
    out = rows[["path", "label", "split"]].assign(fold=folds, **{APPEARANCE: [f"{v:.6g}" for v in appearance]})
    for i, c in enumerate(vocab):
        out[PROB_PREFIX + c] = [f"{v:.6g}" for v in probs[:, i]]
    write_csv(out_dir / "probs.csv", out.to_dict("records"), list(out.columns))
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def accuracy(probs: np.ndarray, given: np.ndarray) -> float:
    """Share of rows whose most probable class is the given label."""
    return float((probs.argmax(1) == given).mean())


def read_probs(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """(rows path/label/split/fold/appearance, probabilities, class order) from a probs.csv."""
    df = pd.read_csv(path)
    classes = [c[len(PROB_PREFIX):] for c in df.columns if c.startswith(PROB_PREFIX)]
    probs = df[[PROB_PREFIX + c for c in classes]].to_numpy(dtype=np.float64)
    return df.drop(columns=[PROB_PREFIX + c for c in classes]), probs, classes

