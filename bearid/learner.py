"""Data loaders, learner and the two schedules (`train.schedule`), built on fastai.

lesson:
    fit_one_cycle(freeze_epochs, lr)  frozen body, new head
    unfreeze; lr_find
    fit_one_cycle(epochs, slice(lr_min, lr/10))  discriminative learning rates
fine_tune (the newer course's call):
    fine_tune(epochs, lr, freeze_epochs)
"""

from __future__ import annotations

import math
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torchvision
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.callback.schedule import SuggestionMethod
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import ColReader, ColSplitter, Normalize
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper
from fastai.metrics import accuracy, error_rate
from fastai.torch_core import set_seed
from fastai.vision.augment import (RandomResizedCrop, RandomResizedCropGPU, Resize, ResizeMethod,
                                   aug_transforms)
from fastai.vision.core import imagenet_stats
from fastai.vision.data import ImageBlock
from fastai.vision.learner import vision_learner

from . import pretrained as packaged
from .archs import bare_model, body, is_timm, resolve
from .errors import ParamsError
from .params import TrainParams

ROOT = Path(".")
NORMALIZE = imagenet_stats  # torchvision's weights (and from-scratch training)
# fastai's default Adam (betas 0.9/0.99, eps 1e-5, decoupled weight decay) as PyTorch's fused AdamW:
# the same update in one kernel instead of a Python loop over parameters, a quarter of the step time on
# a CPU. Unlike fastai's own Adam it also decays norm and bias weights (by under 3% over a demo run).
OPTIMIZER = partial(OptimWrapper, opt=torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-5, fused=True)


def normalization(arch: str) -> tuple[list[float], list[float]]:
    """The statistics the arch's ImageNet weights were trained with: EfficientNet-Lite's [-1, 1], else ImageNet's."""
    return packaged.stats(arch) or NORMALIZE


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


def dataloaders(manifest: pd.DataFrame, p: TrainParams, root: Path = ROOT, vocab: list[str] | None = None):
    """Train and valid rows of a manifest (path, label, split) as fastai DataLoaders.

    `vocab` (default: the manifest's sorted labels) fixes the classes, for a manifest without rows.
    """
    df = manifest[manifest["split"].isin(["train", "valid"])].reset_index(drop=True)
    df = df.assign(is_valid=df["split"] == "valid")
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=vocab or sorted(manifest["label"].unique()))),
        get_x=ColReader("path", pref=f"{root.as_posix()}/"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
        item_tfms=item_transforms(p),
        batch_tfms=[*batch_augment(p), Normalize.from_stats(*normalization(p.arch))],
    )
    return block.dataloaders(df, bs=p.batch_size, num_workers=p.num_workers, shuffle=True,
                             device=pick_device(p.device))


def item_transforms(p: TrainParams) -> list:
    """Validation always squishes the whole image (as the exported Predictor does); training
    squishes too, or takes the lesson's RandomResizedCrop(img_size, min_scale)."""
    squish = Resize(p.img_size, method=ResizeMethod.Squish)
    if p.resize == "squish":
        return [squish]
    crop = RandomResizedCrop(p.img_size, min_scale=p.min_scale)
    crop.split_idx, squish.split_idx = 0, 1  # crop the training images only
    return [crop, squish]


def batch_augment(p: TrainParams) -> list:
    """fastai's aug_transforms, every batch at exactly img_size.

    Without `size`, fastai's `min_scale` crop keeps each crop at its random
    smaller size, so one 64 px batch held 62, 60 and 46 px images. Here the
    crop is resized to img_size and, like the other augmentations, applies to
    training batches only. (The other transforms keep the item size; given a
    size, they would resample validation images too.)
    """
    if not p.augment:
        return []
    tfms = aug_transforms(**{k: v for k, v in p.aug.items() if k != "min_scale"})
    if p.aug.get("min_scale", 1.0) < 1.0:
        crop = RandomResizedCropGPU(p.img_size, min_scale=p.aug["min_scale"], ratio=(1, 1))
        crop.split_idx = 0
        tfms.append(crop)
    return tfms


def build_learner(dls, p: TrainParams, work_dir: Path) -> Learner:
    """vision_learner with our metrics; optional pretrained body, mixed precision, channels_last."""
    arch = resolve(p.arch)
    learn = vision_learner(dls, arch, pretrained=False, normalize=False, metrics=[error_rate, accuracy],
                           wd=p.wd, ps=p.ps, path=work_dir, opt_func=OPTIMIZER)
    if p.pretrained is not False:
        if is_timm(p.arch):
            load_timm_body_weights(learn, p.arch, p.pretrained)
        else:
            load_body_weights(learn, arch, p.pretrained)
    cuda = dls.device.type == "cuda"
    if p.mixed_precision is True and not cuda:
        raise ParamsError("train.mixed_precision=true needs a CUDA device; use auto or false on a CPU")
    if p.mixed_precision is True or (p.mixed_precision == "auto" and cuda):
        learn.add_cb(MixedPrecision())
    if p.channels_last:
        learn.add_cb(ChannelsLast())
    return learn


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or a .pth state dict read without running pickle code."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_timm_body_weights(learn: Learner, arch: str, pretrained: bool | str) -> None:
    """A timm body's weights: the packaged ImageNet ones (checked) or a local file of timm-named tensors."""
    timm_model = learn.model[0].model
    if pretrained is True:
        state = packaged.timm_state_dict(arch)
        source = packaged.weights_file(arch)
    else:
        source = Path(pretrained)
        state = read_state(source)
    head = timm_model.pretrained_cfg.get("classifier", "classifier")
    state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    try:
        timm_model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ParamsError(f"train.pretrained: {source} does not hold timm {arch} weights ({first})") from None


def load_body_weights(learn: Learner, arch: Callable, pretrained: bool | str) -> None:
    """Pretrained body weights from a local file or the torchvision cache; never downloads.

    torchvision names its files `<arch>-<first 8 hex digits of the sha256>.pth`;
    a cached file whose content does not match its name is refused.
    """
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
        prefix = path.stem.rsplit("-", 1)[-1]
        if not packaged.sha256_of(path).startswith(prefix):
            raise ParamsError(f"train.pretrained=true: {path}: its sha256 does not start with {prefix} as its "
                              "name says; delete it and put torchvision's file there")
    else:
        path = Path(pretrained)
    state = read_state(path)
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
    lr_find_phase: str = "unfrozen"  # which model the LR finder ran on
    history: list[dict] = field(default_factory=list)


def fit(learn: Learner, p: TrainParams, cbs: list | None = None) -> Schedule:
    """The schedule `train.schedule` names."""
    return fit_fine_tune(learn, p, cbs) if p.schedule == "fine_tune" else fit_lesson(learn, p, cbs)


def _recorder(learn: Learner, sched: Schedule):
    """Appends the recorder's per-epoch rows of the fit just ended to `sched.history`, under a phase name."""
    def record(phase: str) -> None:
        names = [n for n in learn.recorder.metric_names if n not in ("epoch", "time")]
        for values in learn.recorder.values:
            sched.history.append({"phase": phase, "epoch": len(sched.history),
                                  **{n: float(v) for n, v in zip(names, values)}})
    return record


def _lr_find(learn: Learner, p: TrainParams, sched: Schedule) -> None:
    with learn.no_logging():
        learn.lr_find(num_it=p.lr_find_iters, show_plot=False, suggest_funcs=None)
    sched.lr_find = [(float(lr), float(loss)) for lr, loss in zip(learn.recorder.lrs, learn.recorder.losses)]
    sched.lr_suggested = suggest_lr(sched.lr_find, p.lr_find_iters, p.suggest)


def fit_lesson(learn: Learner, p: TrainParams, cbs: list | None = None) -> Schedule:
    """The lesson's schedule; per-epoch rows of both phases go to `history`."""
    sched = Schedule(lr=p.lr)
    record = _recorder(learn, sched)
    if p.freeze_epochs:
        learn.freeze()
        learn.fit_one_cycle(p.freeze_epochs, p.lr, cbs=cbs)
        record("frozen")
    learn.unfreeze()
    _lr_find(learn, p, sched)
    sched.lr_min = min(sched.lr_suggested, p.lr / 10) if p.lr_min == "auto" else p.lr_min
    learn.fit_one_cycle(p.epochs, slice(sched.lr_min, p.lr / 10), cbs=cbs)
    record("unfrozen")
    return sched


class _PhaseRows(Callback):
    """Records each fit's rows as fastai's `fine_tune` ends it (frozen first, then unfrozen)."""
    order = 100

    def __init__(self, record):
        self.record = record

    def after_fit(self) -> None:
        self.record("frozen" if self.learn.opt.frozen_idx else "unfrozen")


def fit_fine_tune(learn: Learner, p: TrainParams, cbs: list | None = None) -> Schedule:
    """fastai's `fine_tune(epochs, lr, freeze_epochs)`, the newer course's call.

    It runs `freeze_epochs` one-cycle epochs on the frozen body at `lr`, then
    `epochs` unfrozen at slice(lr/200, lr/2). The LR finder runs first on the
    frozen model, as the course does before choosing a rate; its curve and
    suggestion are recorded, the rate used stays `train.lr`.
    """
    sched = Schedule(lr=p.lr, lr_min=p.lr / 2 / 100, lr_find_phase="frozen")
    learn.freeze()
    _lr_find(learn, p, sched)
    rows = _PhaseRows(_recorder(learn, sched))
    learn.fine_tune(p.epochs, p.lr, freeze_epochs=p.freeze_epochs, cbs=[*(cbs or []), rows])
    return sched
