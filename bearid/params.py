"""Typed, validated views of params.yaml, one dataclass per section.

Every stage reads exactly one or two sections through `load`; an unknown key, a
wrong type or an out-of-range value fails at once, naming the key, so a typo in
`dvc exp run -S` never trains for ten minutes on a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

PARAMS_FILE = Path("params.yaml")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SUGGESTIONS = ("valley", "steep", "minimum", "slide")


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key."""


@dataclass(frozen=True)
class DemoParams:
    img_size: int = 32
    per_class: int = 0  # 0: every digit image of the class
    mislabeled: float = 0.08
    out_of_place: float = 0.03
    corrupt_per_kind: int = 2
    duplicates: int = 5
    seed: int = 0

    def check(self, key: str) -> None:
        _range(f"{key}.img_size", self.img_size, 8, 1024)
        _range(f"{key}.per_class", self.per_class, 0, 10_000)
        _range(f"{key}.mislabeled", self.mislabeled, 0.0, 0.5)
        _range(f"{key}.out_of_place", self.out_of_place, 0.0, 0.5)
        _range(f"{key}.corrupt_per_kind", self.corrupt_per_kind, 0, 100)
        _range(f"{key}.duplicates", self.duplicates, 0, 1000)


@dataclass(frozen=True)
class FetchParams:
    source: Literal["demo", "files", "ddg"] = "demo"
    classes: list = field(default_factory=lambda: ["three", "five", "eight"])
    query: str = "{cls}"
    max_per_class: int = 200
    files_dir: str = "urls"
    search_retries: int = 4  # ddg: tries per query on rate-limit / timeout errors
    search_backoff: float = 2.0  # ddg: first wait in seconds, doubled per retry, capped at 60
    demo: DemoParams = field(default_factory=DemoParams)

    def check(self, key: str) -> None:
        if not self.classes:
            raise ParamsError(f"{key}.classes: empty; list at least two class names")
        if len(set(self.classes)) != len(self.classes):
            raise ParamsError(f"{key}.classes: duplicate names in {self.classes}")
        for c in self.classes:
            if not isinstance(c, str) or not c or "/" in c or c.startswith("."):
                raise ParamsError(f"{key}.classes: {c!r} is not a usable folder name")
        if len(self.classes) < 2:
            raise ParamsError(f"{key}.classes: {self.classes} has one class; a classifier needs two or more")
        if self.source == "demo":
            bad = [c for c in self.classes if c not in DIGIT_NAMES]
            if bad:
                raise ParamsError(f"{key}.classes: {bad} are not demo classes; "
                                  f"the demo source knows {list(DIGIT_NAMES)}")
        try:
            filled = self.query.format(cls="\0")
        except (KeyError, IndexError, ValueError):
            filled = ""
        if "\0" not in filled:
            raise ParamsError(f"{key}.query: {self.query!r} must contain '{{cls}}' and no other "
                              "placeholder, e.g. '{cls} bear'")
        _range(f"{key}.max_per_class", self.max_per_class, 1, 100_000)
        _range(f"{key}.search_retries", self.search_retries, 1, 20)
        _range(f"{key}.search_backoff", self.search_backoff, 0.0, 60.0)
        self.demo.check(f"{key}.demo")


@dataclass(frozen=True)
class DownloadParams:
    workers: int = 64  # threads: downloading waits on the network, not the CPU; per_host caps each host
    per_host: int = 8  # at most this many requests to one host at a time
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # longest silence while reading
    deadline: float = 15.0  # total seconds per URL, retries included: trickling servers are cut off
    retries: int = 2  # extra tries after a 429 / 5xx / connection error
    backoff: float = 0.5  # first wait in seconds before a retry, doubled per retry
    max_bytes: int = 20_000_000
    max_redirects: int = 5
    allow_file: bool = True  # accept file: URLs (the demo and local `files` lists)

    def check(self, key: str) -> None:
        _range(f"{key}.workers", self.workers, 1, 256)
        _range(f"{key}.per_host", self.per_host, 1, 256)
        _range(f"{key}.connect_timeout", self.connect_timeout, 0.1, 600)
        _range(f"{key}.read_timeout", self.read_timeout, 0.1, 600)
        _range(f"{key}.deadline", self.deadline, 0.1, 3600)
        _range(f"{key}.retries", self.retries, 0, 10)
        _range(f"{key}.backoff", self.backoff, 0.0, 60)
        _range(f"{key}.max_bytes", self.max_bytes, 1, 10**10)
        _range(f"{key}.max_redirects", self.max_redirects, 0, 30)


@dataclass(frozen=True)
class VerifyParams:
    max_size: int = 64
    workers: int = 2
    min_size: int = 16  # reject images whose shorter side is below this
    max_pixels: int = 50_000_000  # larger images are rejected as decompression bombs
    animated: Literal["first", "reject"] = "first"
    near_dup_distance: int = 3  # pHash bits that may differ between near-duplicates (demo digits: >= 4)
    resample: Literal["bilinear", "bicubic", "lanczos"] = "bilinear"  # Pillow's antialiased downscaling filter

    def check(self, key: str) -> None:
        _range(f"{key}.max_size", self.max_size, 8, 10_000)
        _range(f"{key}.workers", self.workers, 1, 64)
        _range(f"{key}.min_size", self.min_size, 1, 10_000)
        _range(f"{key}.max_pixels", self.max_pixels, 64, 10**10)
        _range(f"{key}.near_dup_distance", self.near_dup_distance, 0, 32)


@dataclass(frozen=True)
class SplitParams:
    valid_pct: float = 0.2
    test_pct: float = 0.15
    seed: int = 42

    def check(self, key: str) -> None:
        _range(f"{key}.valid_pct", self.valid_pct, 0.01, 0.98)
        _range(f"{key}.test_pct", self.test_pct, 0.0, 0.98)
        if self.valid_pct + self.test_pct >= 1:
            raise ParamsError(f"{key}.valid_pct + {key}.test_pct = {self.valid_pct + self.test_pct:g}: "
                              "must be below 1 to leave images to train on")


@dataclass(frozen=True)
class DiagnoseParams:
    """Thresholds of the training diagnosis (see bearid/diagnosis.py)."""
    explode_ratio: float = 3.0  # final valid loss / best valid loss
    min_improvement: float = 0.1  # relative error-rate drop from first to best epoch
    worsen_tolerance: float = 0.02  # absolute error-rate rise after the best epoch
    underfit_ratio: float = 1.3  # final train loss / final valid loss

    def check(self, key: str) -> None:
        _range(f"{key}.explode_ratio", self.explode_ratio, 1.0, 1e6)
        _range(f"{key}.min_improvement", self.min_improvement, 0.0, 1.0)
        _range(f"{key}.worsen_tolerance", self.worsen_tolerance, 0.0, 1.0)
        _range(f"{key}.underfit_ratio", self.underfit_ratio, 1.0, 1e6)


@dataclass(frozen=True)
class TrainParams:
    arch: str = "resnet18"
    pretrained: Union[bool, str] = False
    img_size: int = 64
    batch_size: int = 16
    freeze_epochs: int = 1
    epochs: int = 6
    lr: float = 3e-3  # the lesson's fine-tuning rate; the demo trains from scratch at 1e-2 (params.yaml)
    lr_min: Union[float, str] = "auto"
    suggest: Literal["valley", "steep", "minimum", "slide"] = "valley"
    lr_find_iters: int = 50
    wd: float = 0.01
    ps: float = 0.5
    augment: bool = False
    aug: dict = field(default_factory=dict)
    schedule: Literal["lesson", "fine_tune"] = "lesson"  # lesson: two fit_one_cycle phases; fine_tune: fastai's fine_tune
    resize: Literal["squish", "random_resized_crop"] = "squish"  # training item transform; validation always squishes
    min_scale: float = 0.5  # random_resized_crop: smallest share of the image area a crop keeps (the lesson's 0.5)
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Union[bool, str] = "auto"
    channels_last: bool = False
    num_workers: int = 0
    diagnose: DiagnoseParams = field(default_factory=DiagnoseParams)

    def check(self, key: str) -> None:
        from . import archs  # torch-heavy: only stages that train pay for it
        from .archs import AUG_KEYS

        try:
            archs.check(self.arch, f"{key}.arch")
        except ValueError as e:
            raise ParamsError(str(e)) from None
        if self.pretrained is True and archs.is_timm(self.arch):
            from .pretrained import known
            known(self.arch)  # a timm arch without offline ImageNet weights: refused before any training
        if isinstance(self.pretrained, str) and not Path(self.pretrained).is_file():
            raise ParamsError(f"{key}.pretrained: weights file {self.pretrained!r} not found "
                              "(use false, true for the packaged or torchvision-cache ImageNet weights, or a local file)")
        _range(f"{key}.img_size", self.img_size, 16, 2048)
        _range(f"{key}.batch_size", self.batch_size, 1, 4096)
        _range(f"{key}.freeze_epochs", self.freeze_epochs, 0, 1000)
        _range(f"{key}.epochs", self.epochs, 1, 1000)
        if not self.lr > 0 or self.lr >= 100:
            raise ParamsError(f"{key}.lr: {self.lr!r} must be > 0 and < 100")
        if self.lr_min != "auto" and (isinstance(self.lr_min, str) or not 0 < self.lr_min < 100):
            raise ParamsError(f"{key}.lr_min: {self.lr_min!r} must be 'auto' (the LR finder's "
                              "suggestion) or a number > 0")
        _range(f"{key}.lr_find_iters", self.lr_find_iters, 20, 1000)
        _range(f"{key}.wd", self.wd, 0.0, 10.0)
        _range(f"{key}.min_scale", self.min_scale, 0.01, 1.0)
        scale = self.aug.get("min_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.01 <= scale <= 1.0:
            raise ParamsError(f"{key}.aug.min_scale: {self.aug['min_scale']!r} is out of range [0.01, 1]")
        _range(f"{key}.ps", self.ps, 0.0, 0.99)
        unknown = sorted(set(self.aug) - AUG_KEYS)
        if unknown:
            raise ParamsError(f"{key}.aug: unknown aug_transforms arguments {unknown}; "
                              f"allowed: {sorted(AUG_KEYS)}")
        if isinstance(self.mixed_precision, str) and self.mixed_precision != "auto":
            raise ParamsError(f"{key}.mixed_precision: {self.mixed_precision!r} must be auto, true or false")
        _range(f"{key}.num_workers", self.num_workers, 0, 64)
        self.diagnose.check(f"{key}.diagnose")


@dataclass(frozen=True)
class CrossvalParams:
    """K-fold training for out-of-sample probabilities (bearid/crossval.py)."""
    folds: int = 3
    epochs: int = 4
    lr: float = 1e-2
    img_size: int = 64  # smaller is cheaper, but weaker folds rank noisy labels worse (README: crossval)

    def check(self, key: str) -> None:
        _range(f"{key}.folds", self.folds, 2, 20)
        _range(f"{key}.img_size", self.img_size, 16, 2048)
        _range(f"{key}.epochs", self.epochs, 1, 1000)
        if not 0 < self.lr < 100:
            raise ParamsError(f"{key}.lr: {self.lr!r} must be > 0 and < 100")


@dataclass(frozen=True)
class InterpretParams:
    top_k: int = 16
    min_confused: int = 1
    batch_size: int = 128
    method: Literal["top_losses", "confident_learning"] = "confident_learning"
    probabilities: Literal["out_of_sample", "in_sample"] = "out_of_sample"
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                       "predicted_neq_given", "low_normalized_margin", "low_self_confidence"] = "prune_by_noise_rate"
    rank_by: Literal["self_confidence", "normalized_margin", "confidence_weighted_entropy"] = "self_confidence"
    ood_method: Literal["appearance", "entropy", "least_confidence", "cleanlab"] = "appearance"
    ood_threshold: float = 0.8

    def check(self, key: str) -> None:
        _range(f"{key}.top_k", self.top_k, 1, 1000)
        _range(f"{key}.min_confused", self.min_confused, 1, 10**6)
        _range(f"{key}.batch_size", self.batch_size, 1, 4096)
        _range(f"{key}.ood_threshold", self.ood_threshold, 0.0, 1.0)


@dataclass(frozen=True)
class MinScore:
    """The policy's score thresholds: one per ranking method, one for the out-of-place score."""
    top_losses: float = 2.3  # cross-entropy: the given label has p < 0.1
    confident_learning: float = 0.5  # 1 - label quality
    out_of_place: float = 0.8

    def check(self, key: str) -> None:
        _range(f"{key}.top_losses", self.top_losses, 0.0, 1e3)
        _range(f"{key}.confident_learning", self.confident_learning, 0.0, 1.0)
        _range(f"{key}.out_of_place", self.out_of_place, 0.0, 1.0)


@dataclass(frozen=True)
class CleanParams:
    decisions: str = "cleaning/decisions.csv"
    min_score: MinScore = field(default_factory=MinScore)
    max_fraction: float = 0.25  # of each class's train+valid images

    def check(self, key: str) -> None:
        self.min_score.check(f"{key}.min_score")
        _range(f"{key}.max_fraction", self.max_fraction, 0.0, 1.0)


@dataclass(frozen=True)
class RetrainParams:
    """Keys of `train` to change for the final model; the rest is inherited."""
    overrides: dict = field(default_factory=dict)

    def check(self, key: str) -> None:
        names = {f.name for f in dataclasses.fields(TrainParams)}
        unknown = sorted(set(self.overrides) - names)
        if unknown:
            raise ParamsError(f"{key}.overrides: unknown train keys {unknown}; allowed: {sorted(names)}")

    def apply(self, train: TrainParams) -> TrainParams:
        merged = {**dataclasses.asdict(train), **self.overrides}
        return _build(TrainParams, merged, "retrain.overrides")


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 128

    def check(self, key: str) -> None:
        _range(f"{key}.batch_size", self.batch_size, 1, 4096)


SECTIONS: dict[str, type] = {
    "fetch": FetchParams, "download": DownloadParams, "verify": VerifyParams,
    "split": SplitParams, "train": TrainParams, "crossval": CrossvalParams, "interpret": InterpretParams,
    "clean": CleanParams, "retrain": RetrainParams, "evaluate": EvaluateParams,
}


def load(section: str, path: Path | str = PARAMS_FILE) -> Any:
    """Read one section of params.yaml into its validated dataclass."""
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{path}: unknown sections {unknown}; allowed: {sorted(SECTIONS)}")
    return parse(section, raw.get(section) or {})


def check_size(size_key: str, img_size: int, path: Path | str = PARAMS_FILE) -> None:
    """Across sections: a stage that trains at `img_size` refuses images verify shrank below it."""
    max_size = load("verify", path).max_size
    if max_size < img_size:
        raise ParamsError(f"verify.max_size ({max_size}) is below {size_key} ({img_size}): verified images "
                          f"are at most {max_size} px, so training would upscale them; raise verify.max_size "
                          f"to at least {img_size} or lower {size_key}")


def parse(section: str, values: dict) -> Any:
    """Validate a mapping as the given section (used by `load` and by tests)."""
    return _build(SECTIONS[section], values, section)


def _build(cls: type, values: Any, key: str) -> Any:
    if not isinstance(values, dict):
        raise ParamsError(f"{key}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ParamsError(f"{key}: unknown keys {unknown}; allowed: {sorted(fields)}")
    kwargs = {name: _coerce(hints[name], v, f"{key}.{name}") for name, v in values.items()}
    obj = cls(**kwargs)
    obj.check(key)
    return obj


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, key)
    if origin is Literal:
        if value not in get_args(hint):
            raise ParamsError(f"{key}: {value!r} is not one of {list(get_args(hint))}")
        return value
    if origin is Union:  # the first member type that accepts the value
        for member in get_args(hint):
            try:
                return _coerce(member, value, key)
            except ParamsError:
                continue
        names = " or ".join(getattr(m, "__name__", str(m)) for m in get_args(hint))
        raise ParamsError(f"{key}: {value!r} must be {names}")
    if hint is bool and not isinstance(value, bool):
        raise ParamsError(f"{key}: {value!r} must be true or false")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamsError(f"{key}: {value!r} must be an integer")
    if hint is float:
        if isinstance(value, str):  # PyYAML reads YAML 1.2 floats such as 1e-06 as strings
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: {value!r} must be a number")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ParamsError(f"{key}: {value!r} must be a string")
    if hint in (list, dict) and not isinstance(value, hint):
        raise ParamsError(f"{key}: {value!r} must be a {hint.__name__}")
    return value


def _range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ParamsError(f"{key}: {value!r} is out of range [{lo:g}, {hi:g}]")
