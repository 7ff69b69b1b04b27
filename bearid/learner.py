"""Data loaders, learner and the lesson's two-phase schedule, built on fastai.

    fit_one_cycle(freeze_epochs, lr)  frozen body, new head
    unfreeze; lr_find
    fit_one_cycle(epochs, slice(lr_min, lr/10))  discriminative learning rates
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torchvision
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.fp16 import MixedPrecision
from fastai.callback.schedule import SuggestionMethod
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import ColReader, ColSplitter, Normalize
from fastai.learner import Learner
from fastai.metrics import accuracy, error_rate
from fastai.torch_core import set_seed
from fastai.vision.augment import Resize, ResizeMethod, aug_transforms
from fastai.vision.core import imagenet_stats
from fastai.vision.data import ImageBlock
from fastai.vision.learner import vision_learner

from .archs import bare_model, body, resolve
from .errors import ParamsError
from .params import TrainParams

ROOT = Path(".")
NORMALIZE = imagenet_stats


def seed_everything(seed: int) -> None:
    """Same params, same data, same CPU: same numbers."""
    set_seed(seed, reproducible=True)
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ParamsError("train.device=cuda but no CUDA device is available; use auto or cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def dataloaders(manifest: pd.DataFrame, p: TrainParams, root: Path = ROOT):
    """Train and valid rows of a manifest (path, label, split) as fastai DataLoaders."""
    df = manifest[manifest["split"].isin(["train", "valid"])].reset_index(drop=True)
    df = df.assign(is_valid=df["split"] == "valid")
    augment = aug_transforms(**p.aug) if p.augment else []
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=sorted(manifest["label"].unique()))),
        get_x=ColReader("path", pref=f"{root.as_posix()}/"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
        item_tfms=Resize(p.img_size, method=ResizeMethod.Squish),
        batch_tfms=[*augment, Normalize.from_stats(*NORMALIZE)],
    )
    return block.dataloaders(df, bs=p.batch_size, num_workers=p.num_workers, shuffle=True,
                             device=pick_device(p.device))


def build_learner(dls, p: TrainParams, work_dir: Path) -> Learner:
    """vision_learner with our metrics; optional pretrained body, mixed precision, channels_last."""
    arch = resolve(p.arch)
    learn = vision_learner(dls, arch, pretrained=False, metrics=[error_rate, accuracy],
                           wd=p.wd, ps=p.ps, path=work_dir)
    if p.pretrained is not False:
        load_body_weights(learn, arch, p.pretrained)
    cuda = dls.device.type == "cuda"
    if p.mixed_precision is True and not cuda:
        raise ParamsError("train.mixed_precision=true needs a CUDA device; use auto or false on a CPU")
    if p.mixed_precision is True or (p.mixed_precision == "auto" and cuda):
        learn.add_cb(MixedPrecision())
    if p.channels_last:
        learn.add_cb(ChannelsLast())
    return learn


def load_body_weights(learn: Learner, arch: Callable, pretrained: bool | str) -> None:
    """Pretrained body weights from a local file or the torchvision cache; never downloads."""
    if pretrained is True:
        try:
            weights = torchvision.models.get_model_weights(arch).DEFAULT
        except (KeyError, ValueError):
            raise ParamsError(f"train.pretrained=true: {arch.__name__} has no torchvision weights; "
                              "use a local weights file or false") from None
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not path.is_file():
            raise FileNotFoundError(f"train.pretrained=true: {path} is not in the torchvision cache; "
                                    "put the weights file there or set train.pretrained to a local file")
    else:
        path = Path(pretrained)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = bare_model(arch)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ParamsError(f"train.pretrained: {path} does not hold {arch.__name__} weights ({first})") from None
    learn.model[0].load_state_dict(body(model, arch).state_dict())


def suggest_lr(curve: list[tuple[float, float]], num_it: int, method: str = "valley") -> float:
    """fastai's suggestion (valley, steep, minimum or slide) on the curve trimmed as `lr_find` trims it.

    A curve too short to suggest anything (the loss diverged at once) gives its
    lowest learning rate rather than failing the run.
    """
    points = curve[num_it // 10: -5]
    finite = next((i for i, (_, loss) in enumerate(points) if not math.isfinite(loss)), len(points))
    points = points[:finite]
    if len(points) < 2:
        return curve[0][0] if curve else math.nan
    lrs, losses = (torch.tensor(v) for v in zip(*points))
    func = getattr(SuggestionMethod, method.capitalize())
    return float(func(lrs, losses, num_it)[0])


@dataclass
class Schedule:
    """What the two phases chose and recorded, for metrics and diagnosis."""
    lr: float
    lr_min: float = math.nan
    lr_suggested: float = math.nan
    lr_find: list[tuple[float, float]] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


def fit_lesson(learn: Learner, p: TrainParams, cbs: list | None = None) -> Schedule:
    """The lesson's schedule; per-epoch rows of both phases go to `history`."""
    sched = Schedule(lr=p.lr)
    recorder = learn.recorder

    def record(phase: str) -> None:
        names = [n for n in recorder.metric_names if n not in ("epoch", "time")]
        for values in recorder.values:
            sched.history.append({"phase": phase, "epoch": len(sched.history),
                                  **{n: float(v) for n, v in zip(names, values)}})

    if p.freeze_epochs:
        learn.freeze()
        learn.fit_one_cycle(p.freeze_epochs, p.lr, cbs=cbs)
        record("frozen")
    learn.unfreeze()
    with learn.no_logging():
        learn.lr_find(num_it=p.lr_find_iters, show_plot=False, suggest_funcs=None)
    sched.lr_find = [(float(lr), float(loss)) for lr, loss in zip(recorder.lrs, recorder.losses)]
    sched.lr_suggested = suggest_lr(sched.lr_find, p.lr_find_iters, p.suggest)
    sched.lr_min = min(sched.lr_suggested, p.lr / 10) if p.lr_min == "auto" else p.lr_min
    learn.fit_one_cycle(p.epochs, slice(sched.lr_min, p.lr / 10), cbs=cbs)
    record("unfrozen")
    return sched
