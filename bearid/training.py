"""A whole training run as the train and retrain stages do it: manifest in, model and records out.

    out_dir/model.safetensors, model.json   the exported model
    out_dir/live/                           DVCLive: metrics.json, per-epoch plots
    out_dir/lr_find.csv, lr_find.png        the LR-finder curve, suggestion marked
    out_dir/history.csv                     per-epoch rows of both phases
    out_dir/diagnosis.json                  which of the lesson's failure modes the curves show
    out_dir/show_batch.png                  what the model is fed: augmented training images with labels
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from dvclive import Live
from dvclive.fastai import DVCLiveCallback
from fastai.callback.progress import ProgressCallback

from . import diagnosis
from .atomic import write_csv, write_json
from .export import save_model
from .learner import build_learner, dataloaders, fit, normalization, seed_everything
from .params import ParamsError, TrainParams
from .plots import save_lr_find_png, save_show_batch
from .progress import log


class PhaseLogger(DVCLiveCallback):
    """DVCLive's fastai callback, kept open across both phases; `Live.end` is ours to call.

    It logs no params: DVCLive would write them to live/params.yaml, an undeclared copy of what
    params.yaml and model.json already record.
    """

    def before_fit(self) -> None:
        pass

    def after_fit(self) -> None:
        pass


def console_logger(learn, stage: str):
    """One line per epoch instead of fastai's progress bars when not on a terminal."""
    def write(row: list) -> None:
        names = learn.recorder.metric_names[1:-1]
        epoch, *values, elapsed = row
        phase = "frozen" if learn.opt.frozen_idx else "unfrozen"
        text = ", ".join(f"{n} {v:.4f}" for n, v in zip(names, values))
        log(stage, f"{phase} epoch {epoch + 1}/{learn.n_epoch}: {text} ({elapsed})")
    return write


def train_run(manifest_csv: Path, p: TrainParams, out_dir: Path, stage: str) -> dict:
    """Train on the manifest's train/valid rows; write model, metrics, plots and diagnosis."""
    seed_everything(p.seed)
    manifest = pd.read_csv(manifest_csv)
    n_train = int((manifest["split"] == "train").sum())
    if p.batch_size > n_train:  # fastai drops the last incomplete batch: there would be none to train on
        raise ParamsError(f"{stage}: batch_size {p.batch_size} is more than the {n_train} training images "
                          f"in {manifest_csv}; lower train.batch_size (or retrain.batch_size)")
    dls = dataloaders(manifest, p)
    with tempfile.TemporaryDirectory(prefix="bearid-") as work_dir:  # lr_find's scratch checkpoint
        learn = build_learner(dls, p, Path(work_dir))
        return _train(learn, dls, p, out_dir, stage)


def _train(learn, dls, p: TrainParams, out_dir: Path, stage: str) -> dict:
    if not sys.stdout.isatty():
        learn.remove_cb(ProgressCallback)
        learn.logger = console_logger(learn, stage)
    log(stage, f"{len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, "
               f"classes {list(dls.vocab)}, {p.arch} at {p.img_size}px")

    # DVCLive writes after every epoch: into a partial folder, renamed whole at the end, so that
    # a killed run leaves no one-epoch metrics.json that `dvc metrics show` would present as real.
    partial, live_dir = out_dir / ".live.partial", out_dir / "live"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(live_dir, ignore_errors=True)
    live = Live(str(partial), save_dvc_exp=False, dvcyaml=None, report=None)
    start = time.perf_counter()
    sched = fit(learn, p, cbs=[PhaseLogger(live=live)])
    seconds = time.perf_counter() - start

    verdict = diagnosis.diagnose(sched.history, p.diagnose, n_valid=len(dls.valid_ds),
                                  n_classes=len(dls.vocab))
    for key, value in {"lr": sched.lr, "lr_min": sched.lr_min, "lr_suggested": sched.lr_suggested}.items():
        live.summary[key] = value
    live.summary["diagnosis"] = verdict["verdict"]
    live.end()
    partial.rename(live_dir)

    save_model(learn.model, list(dls.vocab), p, normalization(p.arch), out_dir)
    write_csv(out_dir / "history.csv", sched.history, list(sched.history[0]))
    write_csv(out_dir / "lr_find.csv", ({"lr": lr, "loss": loss} for lr, loss in sched.lr_find),
              ["lr", "loss"])
    save_lr_find_png(sched, out_dir / "lr_find.png", p.suggest)
    save_show_batch(dls, out_dir / "show_batch.png")  # after training: its random draws leave training alone
    write_json(out_dir / "diagnosis.json", verdict)
    last = sched.history[-1]
    log(stage, f"done in {seconds:.0f}s: error_rate {last['error_rate']:.4f}, "
               f"lr {sched.lr:g}, lr_min {sched.lr_min:.3g} (lr_find suggested {sched.lr_suggested:.3g})")
    log(stage, f"diagnosis: {verdict['verdict']}: {verdict['advice']}")
    return {"schedule": sched, "diagnosis": verdict}
