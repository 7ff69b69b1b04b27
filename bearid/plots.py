"""PNG figures the pipeline writes beside its CSV plots (headless matplotlib)."""

from __future__ import annotations

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
    ax.set_title("LR finder (unfrozen)")
    save_figure(fig, path)
