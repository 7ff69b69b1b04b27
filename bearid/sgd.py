"""`bearid sgd-demo`: the lesson's look under the hood, fitting a line by gradient descent.

The model is y = x @ a with x = [x, 1], so a = [slope, intercept]; the loss is the mean
squared error; `loss.backward()` gives the gradient and `a -= lr * a.grad` runs under
`torch.no_grad()`. A batch size below n makes it stochastic gradient descent on shuffled
mini-batches. Writes into the output folder, each file atomically, result.json last:

    loss.csv, loss.png   full-data loss after every step (step, epoch, loss)
    fit.gif              the fitted line over the data, one frame every `frame_every` steps
    result.json          fitted, true and least-squares coefficients, losses, diagnosis
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_open, write_csv, write_json
from .plots import plt, save_figure
from .progress import log

INIT = (-1.0, 1.0)  # the lesson's starting guess for [slope, intercept]
FRAME_MS, LAST_FRAME_MS = 50, 1500  # the last frame is held so the final fit can be seen
FILES = {"csv": "loss.csv", "png": "loss.png", "gif": "fit.gif", "json": "result.json"}
ADVICE = {
    "lr_too_high": "lower --lr (try 10x smaller)",
    "lr_too_low": "raise --lr (try 10x larger)",
    "too_few_epochs": "raise --epochs (or --lr a little)",
    "ok": "nothing to change",
}


@dataclass(frozen=True)
class Config:
    n: int = 100
    coef: tuple[float, float] = (3.0, 2.0)  # true slope, intercept
    noise: float = 0.3  # standard deviation of the Gaussian noise on y
    seed: int = 42
    lr: float = 0.1
    epochs: int = 100
    batch_size: int = 0  # 0 or >= n: full batch, i.e. plain gradient descent
    frame_every: int = 1

    @property
    def full_batch(self) -> bool:
        return self.batch_size == 0 or self.batch_size >= self.n

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.full_batch else -(-self.n // self.batch_size)


@dataclass(frozen=True)
class ToyThresholds:
    """The toy's counterpart of the pipeline's `train.diagnose.*` (bearid.params.DiagnoseParams)."""
    explode_ratio: float = 10.0  # loss / best loss; looser than the pipeline's 3 as mini-batches are noisy
    min_improvement: float = 0.1  # share of the gap to the floor to close, else lr_too_low
    tail: float = 0.1  # share of the steps, at the end, that must not still be falling
    min_drop: float = 0.01  # fall over the tail, relative to the final loss, meaning too_few_epochs
    resolution: float = 1e-3  # losses below this share of the first count as converged


@dataclass(frozen=True)
class Fit:
    losses: list[float]  # full-data loss after each step; losses[0] is before the first
    frames: list[tuple[int, float, float]]  # (step, slope, intercept) to animate
    coef: list[float]  # where the run stopped: infinite after an overflow
    stopped_early: bool


# --- data and training ------------------------------------------------------------------


def make_data(n: int, coef: Sequence[float], noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x uniform in [-1, 1] beside a column of ones (the intercept is just a weight)."""
    x = torch.ones(n, 2)
    x[:, 0].uniform_(-1.0, 1.0, generator=gen)
    y = x @ torch.tensor(coef, dtype=torch.float32) + noise * torch.randn(n, generator=gen)
    return x, y


def mse(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((y_hat - y) ** 2).mean()


def least_squares(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The exact minimiser, noise included: where gradient descent should end up."""
    return torch.linalg.lstsq(x.double(), y.double()[:, None]).solution[:, 0].float()


def frame_steps(steps: int, every: int) -> list[int]:
    """Steps that get a GIF frame: 0, every `every`-th, and the last."""
    return sorted({*range(0, steps + 1, every), steps})


def exploded(loss: float, best: float, ratio: float) -> bool:
    return not math.isfinite(loss) or loss > ratio * best


def fit(x: torch.Tensor, y: torch.Tensor, cfg: Config, gen: torch.Generator,
        t: ToyThresholds = ToyThresholds()) -> Fit:
    """Gradient descent from INIT; stops at the first step whose loss explodes, before
    the numbers overflow into NaN."""
    a = torch.tensor(INIT, requires_grad=True)

    def full_loss() -> float:
        with torch.no_grad():
            return mse(x @ a, y).item()

    wanted = set(frame_steps(cfg.epochs * cfg.steps_per_epoch, cfg.frame_every))
    losses, frames, best = [full_loss()], [(0, *INIT)], math.inf
    for _ in range(cfg.epochs):
        batches = [slice(None)] if cfg.full_batch else torch.randperm(len(x), generator=gen).split(cfg.batch_size)
        for idx in batches:
            mse(x[idx] @ a, y[idx]).backward()
            with torch.no_grad():
                a -= cfg.lr * a.grad
                a.grad.zero_()
            best = min(best, losses[-1])
            losses.append(full_loss())
            stop = exploded(losses[-1], best, t.explode_ratio)
            if (len(losses) - 1 in wanted or stop) and torch.isfinite(a).all():
                frames.append((len(losses) - 1, *a.tolist()))  # a blow-up's last line is drawn too
            if stop:
                return Fit(losses, frames, a.tolist(), stopped_early=True)
    return Fit(losses, frames, a.tolist(), stopped_early=False)


def diagnose(losses: Sequence[float], floor: float = 0.0, t: ToyThresholds = ToyThresholds()) -> dict:
    """A verdict on the loss curve in the pipeline's vocabulary (`bearid.diagnosis`), first match wins.

    The pipeline reads valid loss and error rate per epoch; the toy has only the training
    loss but knows its floor exactly (the least-squares loss). It never says
    too_many_epochs: a two-parameter line on 100 points has nothing to overfit.
    """
    if len(losses) < 2:
        raise ValueError("diagnose: need the loss before and after at least one step")
    first, last = losses[0], losses[-1]
    finite = [v for v in losses if math.isfinite(v)]
    best = min(finite, default=math.nan)
    gap = first - floor
    tail = max(1, round(t.tail * (len(losses) - 1)))
    if len(finite) < len(losses) or exploded(last, best, t.explode_ratio):
        verdict = "lr_too_high"
    elif gap > t.min_improvement * first and first - last < t.min_improvement * gap:
        verdict = "lr_too_low"  # a crawl; a start already near the floor has nothing to crawl to
    elif losses[-1 - tail] - last > t.min_drop * max(last, t.resolution * first):
        verdict = "too_few_epochs"  # still falling (a noise-free fit keeps halving a negligible loss)
    else:
        verdict = "ok"
    evidence = {"steps": len(losses) - 1, "initial_loss": first, "final_loss": last,
                "best_loss": best, "loss_floor": floor}
    return {"verdict": verdict, "advice": ADVICE[verdict], "evidence": evidence, "thresholds": asdict(t)}


# --- outputs ----------------------------------------------------------------------------


def finite_or_none(value):
    """Strict JSON has no NaN or Infinity: a blown-up number is reported as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def save_loss_png(losses: Sequence[float], floor: float, verdict: str, path: Path) -> None:
    steps = [s for s, v in enumerate(losses) if math.isfinite(v) and v > 0]  # a log scale
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [losses[s] for s in steps], label="loss (all points)")
    if floor > 0:
        ax.axhline(floor, color="tab:gray", linestyle="--", label=f"least squares {floor:.3g}")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="mean squared error", title=f"gradient descent: {verdict}")
    ax.legend()
    save_figure(fig, path)


def render_frames(x: torch.Tensor, y: torch.Tensor, coef: Sequence[float],
                  frames: Sequence[tuple[int, float, float]], losses: Sequence[float]) -> list[Image.Image]:
    """The lesson's animation: the data and true line drawn once, each frame redrawing
    only the fitted line and its label (blitting, several times faster than a full draw)."""
    xs, ys = x[:, 0].numpy(), y.numpy()
    ends = np.array([-1.0, 1.0])
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.scatter(xs, ys, s=8, color="tab:blue", alpha=0.6)
    ax.plot(ends, coef[0] * ends + coef[1], color="tab:gray", linestyle="--", linewidth=1)
    low, high = float(ys.min()), float(ys.max())
    ax.set(xlim=(-1.05, 1.05), ylim=(low - 0.2 * (high - low), high + 0.2 * (high - low)), xlabel="x", ylabel="y")
    line, = ax.plot(ends, ends, color="tab:red", linewidth=2, animated=True)
    label = ax.text(0.03, 0.95, "", transform=ax.transAxes, va="top", fontsize=9, animated=True)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    images = []
    for step, slope, intercept in frames:
        fig.canvas.restore_region(background)
        line.set_ydata(slope * ends + intercept)
        label.set_text(f"step {step}  loss {losses[step]:.4g}")  # also keeps frames distinct
        ax.draw_artist(line)
        ax.draw_artist(label)
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB"))
    plt.close(fig)
    return images


def save_gif(images: Sequence[Image.Image], path: Path) -> None:
    """All frames on the first frame's palette: fast, and no colour flicker between frames.
    (Pillow merges identical consecutive frames, hence the step label on each.)"""
    palette = images[0].quantize(colors=64)
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    with atomic_open(path, "wb") as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                       duration=[FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS])


def run(cfg: Config, out: Path | str) -> dict:
    """Generate the data, fit, diagnose, and write the four outputs; returns result.json's content."""
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = make_data(cfg.n, cfg.coef, cfg.noise, gen)
    best = least_squares(x, y)
    floor = mse(x @ best, y).item()
    result = fit(x, y, cfg, gen)
    diagnosis = diagnose(result.losses, floor)
    steps = len(result.losses) - 1
    out = Path(out)
    write_csv(out / FILES["csv"], [{"step": s, "epoch": round(s / cfg.steps_per_epoch, 6), "loss": v}
                                   for s, v in enumerate(result.losses)], ["step", "epoch", "loss"])
    save_loss_png(result.losses, floor, diagnosis["verdict"], out / FILES["png"])
    save_gif(render_frames(x, y, cfg.coef, result.frames, result.losses), out / FILES["gif"])
    summary = finite_or_none({
        "coef": result.coef,
        "true_coef": list(cfg.coef),
        "least_squares_coef": best.tolist(),
        "coef_error": max(abs(a - t) for a, t in zip(result.coef, cfg.coef)),
        "final_loss": result.losses[-1],
        "loss_floor": floor,
        "steps": steps,
        "planned_steps": cfg.epochs * cfg.steps_per_epoch,
        "epochs_run": steps / cfg.steps_per_epoch,
        "stopped_early": result.stopped_early,
        "frames": len(result.frames),
        "diagnosis": diagnosis,
        "config": asdict(cfg),
    })
    write_json(out / FILES["json"], summary)
    return summary


# --- command line -----------------------------------------------------------------------


def _number(kind: type, low: float = -math.inf, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type for a finite number >= low (> low if `above`); argparse puts the
    option's name before the message."""
    rule = "finite" + (f" and {'>' if above else '>='} {low:g}" if low > -math.inf else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if not (math.isfinite(value) and (value > low if above else value >= low)):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="bearid sgd-demo", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Fit y = slope * x + intercept by gradient descent in PyTorch, as in the lesson.")
    p.add_argument("--n", type=_number(int, 2), default=d.n, help="data points")
    p.add_argument("--coef", type=_number(float), nargs=2, default=list(d.coef),
                   metavar=("SLOPE", "INTERCEPT"), help="true coefficients")
    p.add_argument("--noise", type=_number(float, 0), default=d.noise, help="standard deviation of the noise on y")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the data and the shuffles")
    p.add_argument("--lr", type=_number(float, 0, above=True), default=d.lr, help="learning rate")
    p.add_argument("--epochs", type=_number(int, 1), default=d.epochs, help="passes over the data")
    p.add_argument("--batch-size", type=_number(int, 0), default=d.batch_size,
                   help="0 or >= n: full batch (gradient descent); smaller: SGD on mini-batches")
    p.add_argument("--frame-every", type=_number(int, 1), default=d.frame_every,
                   help="one animation frame every this many steps")
    p.add_argument("--out", type=Path, default=Path("sgd-demo"), help="output folder")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _show(value: float | None) -> str:
    return "overflow" if value is None else f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 on a bad argument, 0 after --help
        return exit_.code if isinstance(exit_.code, int) else 2
    cfg = Config(n=args.n, coef=tuple(args.coef), noise=args.noise, seed=args.seed, lr=args.lr,
                 epochs=args.epochs, batch_size=args.batch_size, frame_every=args.frame_every)
    result = run(cfg, args.out)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, allow_nan=False))
        return 0
    d = result["diagnosis"]
    log("sgd-demo", f"{'full batch' if cfg.full_batch else f'mini-batches of {cfg.batch_size}'}, "
                    f"lr {cfg.lr:g}: {result['steps']} steps, slope/intercept "
                    f"[{', '.join(map(_show, result['coef']))}] (true {cfg.coef[0]:g}, {cfg.coef[1]:g}), "
                    f"final loss {_show(result['final_loss'])}")
    log("sgd-demo", f"verdict {d['verdict']}: {d['advice']}")
    log("sgd-demo", f"wrote {', '.join(str(args.out / name) for name in FILES.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
