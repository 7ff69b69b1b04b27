"""PNG figures the pipeline writes beside its CSV plots (headless matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_open  # noqa: E402

if TYPE_CHECKING:
    from .learner import Schedule


def save_figure(fig: plt.Figure, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_lr_find_png(sched: "Schedule", path: Path, method: str) -> None:
    """The LR-finder curve with the suggestion of `method` (train.suggest) marked and named."""
    lrs, losses = zip(*sched.lr_find)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.axvline(sched.lr_suggested, color="tab:red", linestyle="--",
               label=f"{method} {sched.lr_suggested:.2g}")
    ax.legend()
    ax.set_title(f"LR finder ({sched.lr_find_phase})")
    save_figure(fig, path)


def save_show_batch(dls, path: Path, n: int = 16) -> None:
    """fastai's show_batch of one augmented training batch (up to n images, labelled), as a PNG."""
    plt.close("all")
    k = min(n, dls.train.bs)
    rows = math.ceil(math.sqrt(k))
    dls.train.show_batch(max_n=k, nrows=rows, ncols=math.ceil(k / rows), figsize=(8, 8))
    fig = plt.gcf()
    fig.suptitle("training batch as the model sees it (augmented)")
    save_figure(fig, path)
