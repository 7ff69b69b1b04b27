"""`bearid sgd-demo`: the lesson's look under the hood, fitting a line by gradient descent.

The model is y = x @ a with x = [x, 1], so a = [slope, intercept]; the loss is the
mean squared error; `loss.backward()` gives the gradient and the update
`a -= lr * a.grad` runs under `torch.no_grad()`. A batch size below n makes it
stochastic gradient descent on shuffled mini-batches. Writes into the output folder:

    loss.csv, loss.png   full-data loss after every step (step, epoch, loss)
    fit.gif              the fitted line over the data, one frame every `frame_every` steps
    result.json          fitted, true and least-squares coefficients, losses, steps, diagnosis

The verdict uses the pipeline's vocabulary (`bearid.diagnosis`); see `diagnose`.
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
FRAME_MS = 50  # per GIF frame; the last one is held longer so the final fit can be seen
LAST_FRAME_MS = 1500
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
class Fit:
    losses: list[float]  # full-data loss after each step; losses[0] is before the first
    frames: list[tuple[int, float, float]]  # (step, slope, intercept) to animate
    coef: list[float]  # where the run stopped: non-finite after an overflow
    stopped_early: bool


# --- data, model, training --------------------------------------------------------------


def make_data(n: int, coef: Sequence[float], noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x uniform in [-1, 1] beside a column of ones (the intercept is just a weight); y = x @ coef + noise."""
    x = torch.ones(n, 2)
    x[:, 0].uniform_(-1.0, 1.0, generator=gen)
    y = x @ torch.tensor(coef, dtype=torch.float32) + noise * torch.randn(n, generator=gen)
    return x, y


def mse(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((y_hat - y) ** 2).mean()


def least_squares(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The exact minimiser, noise included: where gradient descent should end up."""
    return torch.linalg.lstsq(x.double(), y.double()[:, None]).solution[:, 0].float()


def epoch_batches(n: int, cfg: Config, gen: torch.Generator) -> list[torch.Tensor | slice]:
    """One epoch's index sets: all rows at once, or a fresh shuffle cut into mini-batches."""
    if cfg.full_batch:
        return [slice(None)]
    return list(torch.randperm(n, generator=gen).split(cfg.batch_size))


def frame_steps(steps: int, every: int) -> list[int]:
    """Steps that get a GIF frame: 0, every `every`-th, and the last."""
    return sorted({*range(0, steps + 1, every), steps})


def fit(x: torch.Tensor, y: torch.Tensor, cfg: Config, gen: torch.Generator,
        *, explode_ratio: float = 10.0) -> Fit:
    """Gradient descent from INIT, stopped at the first step whose loss explodes."""
    a = torch.tensor(INIT, requires_grad=True)

    def full_loss() -> float:
        with torch.no_grad():
            return mse(x @ a, y).item()

    wanted = set(frame_steps(cfg.epochs * cfg.steps_per_epoch, cfg.frame_every))
    losses, frames, best = [full_loss()], [(0, *a.tolist())], math.inf
    for _ in range(cfg.epochs):
        for idx in epoch_batches(len(x), cfg, gen):
            loss = mse(x[idx] @ a, y[idx])
            loss.backward()
            with torch.no_grad():
                a -= cfg.lr * a.grad
                a.grad.zero_()
            best = min(best, losses[-1])
            losses.append(full_loss())
            step = len(losses) - 1
            stop = exploded(losses[-1], best, explode_ratio=explode_ratio)
            # after a blow-up the last line is drawn too, unless it overflowed
            if step in wanted or (stop and bool(torch.isfinite(a).all())):
                frames.append((step, *a.tolist()))
            if stop:
                return Fit(losses, frames, a.tolist(), stopped_early=True)
    return Fit(losses, frames, a.tolist(), stopped_early=False)


# --- diagnosis --------------------------------------------------------------------------


def exploded(loss: float, best: float, *, explode_ratio: float = 10.0) -> bool:
    """Not finite, or far above the best loss so far: the learning rate is too high.

    The pipeline's rule (final valid loss over 3x its best) reads finished epochs; here
    it is checked after every step to stop before the numbers overflow, so the ratio
    is looser to let mini-batch noise pass.
    """
    return not math.isfinite(loss) or loss > explode_ratio * best


def barely_improved(losses: Sequence[float], *, floor: float = 0.0, min_improvement: float = 0.1) -> bool:
    """The loss closed less than `min_improvement` of its gap to `floor`: a crawl, lr too low.

    A start already within `min_improvement` of the floor has nothing to crawl towards,
    as the pipeline ignores an error rate that is already low.
    """
    gap = losses[0] - floor
    if gap <= min_improvement * losses[0]:
        return False
    return losses[0] - losses[-1] < min_improvement * gap


def still_falling(losses: Sequence[float], *, tail: float = 0.1, min_drop: float = 0.01,
                  resolution: float = 1e-3) -> bool:
    """Over the last `tail` of the steps the loss fell by more than `min_drop` of its final
    value: more epochs would still pay. Losses under `resolution` of the starting loss
    count as converged (a noise-free fit keeps halving a loss that no longer matters)."""
    k = max(1, round(tail * (len(losses) - 1)))
    scale = max(losses[-1], resolution * losses[0])
    return losses[-1 - k] - losses[-1] > min_drop * scale


def diagnose(losses: Sequence[float], *, floor: float = 0.0, explode_ratio: float = 10.0,
             min_improvement: float = 0.1, tail: float = 0.1, min_drop: float = 0.01) -> dict:
    """A verdict on a training-loss curve in the pipeline's vocabulary, with evidence and fix.

    The rules, first match wins, mirror `bearid.diagnosis`:

        lr_too_high     the loss is not finite, or ended far above its best (`exploded`)
        lr_too_low      the loss barely moved towards `floor` (`barely_improved`)
        too_few_epochs  the loss was still clearly falling at the end (`still_falling`)
        ok              none of the above

    The pipeline reads valid loss and error rate per epoch; the toy has only a
    training loss, but knows its floor exactly (the least-squares loss), which the
    pipeline must approximate with "an error rate worth improving". It never says
    too_many_epochs: overfitting needs a validation curve, and a two-parameter line
    fitted to 100 points has nothing to overfit.
    """
    if len(losses) < 2:
        raise ValueError("diagnose: need the loss before and after at least one step")
    finite = [v for v in losses if math.isfinite(v)]
    best = min(finite, default=math.nan)
    evidence = {"steps": len(losses) - 1, "initial_loss": losses[0], "final_loss": losses[-1],
                "best_loss": best, "loss_floor": floor}
    if len(finite) < len(losses) or exploded(losses[-1], best, explode_ratio=explode_ratio):
        verdict = "lr_too_high"
    elif barely_improved(losses, floor=floor, min_improvement=min_improvement):
        verdict = "lr_too_low"
    elif still_falling(losses, tail=tail, min_drop=min_drop):
        verdict = "too_few_epochs"
    else:
        verdict = "ok"
    thresholds = {"explode_ratio": explode_ratio, "min_improvement": min_improvement,
                  "tail": tail, "min_drop": min_drop}
    return {"verdict": verdict, "advice": ADVICE[verdict], "evidence": evidence, "thresholds": thresholds}


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


def loss_rows(losses: Sequence[float], steps_per_epoch: int) -> list[dict]:
    return [{"step": step, "epoch": round(step / steps_per_epoch, 6), "loss": loss}
            for step, loss in enumerate(losses)]


def save_loss_png(losses: Sequence[float], floor: float, verdict: str, path: Path) -> None:
    steps = [s for s, v in enumerate(losses) if math.isfinite(v) and v > 0]
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
    """The lesson's animation: data fixed, the fitted line moving. The data is drawn once
    and each frame only redraws the line and its label (blitting), about 2 ms a frame."""
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

    Pillow merges identical consecutive frames, so callers keep frames distinct
    (`render_frames` writes the step on each)."""
    palette = images[0].quantize(colors=64)
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    with atomic_open(path, "wb") as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                       duration=durations, loop=0)


def run(cfg: Config, out: Path) -> dict:
    """Generate the data, fit, diagnose, and write the four outputs; returns the result."""
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = make_data(cfg.n, cfg.coef, cfg.noise, gen)
    best = least_squares(x, y)
    floor = mse(x @ best, y).item()
    result = fit(x, y, cfg, gen)
    diagnosis = diagnose(result.losses, floor=floor)
    steps = len(result.losses) - 1
    out = Path(out)
    write_csv(out / FILES["csv"], loss_rows(result.losses, cfg.steps_per_epoch), ["step", "epoch", "loss"])
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


def _checked(kind: type, test: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argparse type whose error says the rule, so the message names option and rule."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="bearid sgd-demo",
        description="Fit y = slope * x + intercept by gradient descent in PyTorch, as in the lesson.")
    p.add_argument("--n", type=_checked(int, lambda v: v >= 2, ">= 2"), default=d.n, help="data points")
    p.add_argument("--coef", type=_checked(float, lambda v: True, "finite"), nargs=2, default=list(d.coef),
                   metavar=("SLOPE", "INTERCEPT"), help="true coefficients")
    p.add_argument("--noise", type=_checked(float, lambda v: v >= 0, ">= 0"), default=d.noise,
                   help="standard deviation of the noise on y")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the data and the shuffles")
    p.add_argument("--lr", type=_checked(float, lambda v: v > 0, "> 0"), default=d.lr, help="learning rate")
    p.add_argument("--epochs", type=_checked(int, lambda v: v >= 1, ">= 1"), default=d.epochs,
                   help="passes over the data")
    p.add_argument("--batch-size", type=_checked(int, lambda v: v >= 0, ">= 0"), default=d.batch_size,
                   help="0 or >= n: full batch (gradient descent); smaller: SGD on mini-batches")
    p.add_argument("--frame-every", type=_checked(int, lambda v: v >= 1, ">= 1"), default=d.frame_every,
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
    coef = ", ".join(_show(v) for v in result["coef"])
    log("sgd-demo", f"{'full batch' if cfg.full_batch else f'mini-batches of {cfg.batch_size}'}, "
                    f"lr {cfg.lr:g}: {result['steps']} steps, slope/intercept [{coef}] "
                    f"(true {cfg.coef[0]:g}, {cfg.coef[1]:g}), final loss {_show(result['final_loss'])}")
    log("sgd-demo", f"verdict {d['verdict']}: {d['advice']}")
    log("sgd-demo", f"wrote {', '.join(str(args.out / name) for name in FILES.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
