"""Typed, validated views of params.yaml, one dataclass per section.

params.yaml is the one source of values: every key must be there, and the code
holds no defaults. Each field holds its key's type, range and meaning once
(`param(...)`), from which docs/parameters.md is generated (`bearid params-doc`).
An unknown, missing, mistyped or out-of-range key fails at once, naming the key,
so a typo in `dvc exp run -S` never trains for ten minutes on a wrong value.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from .errors import ParamsError
from .vocab import DIGIT_NAMES

PARAMS_FILE = Path("params.yaml")
SUGGESTIONS = ("valley", "steep", "minimum", "slide")


def param(meaning: str, lo: float | None = None, hi: float | None = None) -> Any:
    """A params.yaml key: its one-line meaning and, for a number, its inclusive range [lo, hi]."""
    return field(metadata={"meaning": meaning, "range": None if lo is None else (lo, hi)})


@dataclass(frozen=True)
class DemoParams:
    """The offline demo world: digit images with injected faults."""
    img_size: int = param("side of the demo's square images, in pixels", 8, 1024)
    per_class: int = param("digit images per class; 0 takes all (~180)", 0, 10_000)
    mislabeled: float = param("share of images given a wrong class", 0.0, 0.5)
    out_of_place: float = param("share of images that are photo crops, no digit at all", 0.0, 0.5)
    corrupt_per_kind: int = param("bad files per kind: truncated, empty, HTML, dead link", 0, 100)
    duplicates: int = param("exact copies of clean images added to the URL lists", 0, 1000)
    colours: Literal["grey", "varied"] = param("grey (dark grey digits on white) | varied (each digit in its "
                                               "own ink and background colours: colour tells no class)")
    seed: int = param("seed of the demo world")


@dataclass(frozen=True)
class FetchParams:
    """Where the URL lists come from (stage fetch_urls); `classes` is read by download, split, clean too."""
    source: Literal["demo", "files", "ddg"] = param("demo (offline) | files (your URL lists) | ddg (DuckDuckGo)")
    classes: list = param("class names; for the demo, digit names zero to nine")
    query: str = param("search query per class, {cls} standing for the class (ddg)")
    max_per_class: int = param("at most this many URLs per class", 1, 100_000)
    files_dir: str = param("folder of <class>.txt URL lists (source: files)")
    search_retries: int = param("ddg: tries per query on rate-limit or timeout errors", 1, 20)
    search_backoff: float = param("ddg: seconds before the first retry, doubled each time, capped at 60", 0.0, 60.0)
    demo: DemoParams = param("the demo world (source: demo)")

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


@dataclass(frozen=True)
class DownloadParams:
    """Fetching every URL to a file (stage download)."""
    workers: int = param("threads: they wait on the network; per_host caps each host", 1, 256)
    per_host: int = param("concurrent requests to one host", 1, 256)
    connect_timeout: float = param("seconds to connect", 0.1, 600)
    read_timeout: float = param("longest silence while reading a response, seconds", 0.1, 600)
    deadline: float = param("total seconds per URL, retries included", 0.1, 3600)
    retries: int = param("extra tries on 429, 5xx and connection errors", 0, 10)
    backoff: float = param("seconds before the first retry, doubled each time", 0.0, 60)
    max_bytes: int = param("larger responses are cut off and rejected", 1, 10**10)
    max_redirects: int = param("redirects followed per URL", 0, 30)
    file_dir: str = param("file: URLs are read only inside this folder; \"\" allows none (the demo's: data/web)")

    def check(self, key: str) -> None:
        if self.file_dir and Path(self.file_dir).resolve() == Path(self.file_dir).resolve().parent:
            raise ParamsError(f"{key}.file_dir: {self.file_dir!r} is the file system's root; name the folder "
                              "that holds your local images")


@dataclass(frozen=True)
class VerifyParams:
    """Decoding and resizing every downloaded file (stage verify)."""
    max_size: int = param("longest side of a kept image, in pixels", 8, 10_000)
    workers: int = param("decoding processes", 1, 64)
    min_size: int = param("shorter side below this: rejected as too_small", 1, 10_000)
    max_pixels: int = param("more pixels: rejected as a decompression bomb (Pillow refuses over 2 x 89.5 M)",
                            64, 2 * 89_478_485)
    animated: Literal["first", "reject"] = param("animated images: keep the first frame | reject")
    near_dup_distance: int = param("pHash bits that may differ between near-duplicates (demo digits: >= 4)", 0, 32)
    resample: Literal["bilinear", "bicubic", "lanczos"] = param("Pillow's antialiased downscaling filter")


@dataclass(frozen=True)
class SplitParams:
    """The seeded, content-hash-stable train/valid/test split (stage split)."""
    valid_pct: float = param("share of images for validation", 0.01, 0.98)
    test_pct: float = param("share of images held out for the test", 0.0, 0.98)
    seed: int = param("seed of the split's hash")

    def check(self, key: str) -> None:
        if self.test_pct <= 0:
            raise ParamsError(f"{key}.test_pct: {self.test_pct!r} leaves no test images, and the evaluate stage "
                              "scores both models on them; use e.g. 0.15")
        if self.valid_pct + self.test_pct >= 1:
            raise ParamsError(f"{key}.valid_pct + {key}.test_pct = {self.valid_pct + self.test_pct:g}: "
                              "must be below 1 to leave images to train on")


@dataclass(frozen=True)
class DiagnoseParams:
    """Thresholds of the training diagnosis (bearid/diagnosis.py)."""
    explode_ratio: float = param("lr_too_high when final valid loss exceeds best (or chance) loss by this factor",
                               1.0, 1e6)
    min_improvement: float = param("lr_too_low below this relative error-rate drop from first to best epoch",
                                 0.0, 1.0)
    worsen_tolerance: float = param("too_many_epochs above this absolute error-rate rise after the best epoch",
                                  0.0, 1.0)
    underfit_ratio: float = param("too_few_epochs when final train loss exceeds valid loss by this factor", 1.0, 1e6)


# train.aug: fastai aug_transforms arguments that make sense as params, each with its allowed values
AUG_RULES: dict[str, tuple] = {
    "mult": (0.0, 10.0), "max_rotate": (0.0, 180.0), "min_zoom": (0.1, 10.0), "max_zoom": (0.1, 10.0),
    "max_lighting": (0.0, 0.99), "max_warp": (0.0, 0.99), "p_affine": (0.0, 1.0), "p_lighting": (0.0, 1.0),
    "min_scale": (0.01, 1.0), "do_flip": (False, True), "flip_vert": (False, True),
    "pad_mode": ("zeros", "border", "reflection"),
}


def check_aug(key: str, aug: dict) -> None:
    """Each aug_transforms argument known and in range, so that a typo fails before training."""
    unknown = sorted(set(aug) - set(AUG_RULES))
    if unknown:
        raise ParamsError(f"{key}: unknown aug_transforms arguments {unknown}; allowed: {sorted(AUG_RULES)}")
    for name, value in aug.items():
        rule = AUG_RULES[name]
        if isinstance(rule[0], bool) or isinstance(rule[0], str):
            if value not in rule or type(value) is not type(rule[0]):
                raise ParamsError(f"{key}.{name}: {value!r} must be one of {list(rule)}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}.{name}: {value!r} must be a number")
        else:
            _range(f"{key}.{name}", value, *rule)
    if aug.get("min_zoom", 1.0) > aug.get("max_zoom", 1.1):
        raise ParamsError(f"{key}: min_zoom {aug.get('min_zoom', 1.0)} is above max_zoom {aug.get('max_zoom', 1.1)}")


@dataclass(frozen=True)
class TrainParams:
    """The lesson's two-phase fine-tuning (stages train and retrain)."""
    arch: str = param("architecture by name: torchvision's (resnet18/34/50, densenet121, xresnet18, ...) "
                      "or timm's (efficientnet_lite0, ...)")
    pretrained: Union[bool, str] = param("false (from scratch) | true (ImageNet weights: efficientnet_lite0's "
                                         "packaged file, or the torchvision cache) | path to a weights file")
    img_size: int = param("side of the square training images, in pixels", 16, 2048)
    batch_size: int = param("images per batch", 1, 4096)
    freeze_epochs: int = param("epochs with the body frozen; 0 skips that phase", 0, 1000)
    epochs: int = param("epochs after unfreezing", 1, 1000)
    lr: float = param("peak learning rate (the lesson's fine-tuning: 3e-3)")
    lr_min: Union[float, str] = param("lowest layers' rate: auto (the LR finder's suggestion, capped at lr/10) "
                                    "or a number")
    suggest: Literal["valley", "steep", "minimum", "slide"] = param("which LR-finder suggestion auto takes")
    lr_find_iters: int = param("LR-finder iterations", 20, 1000)
    wd: float = param("weight decay", 0.0, 10.0)
    ps: float = param("dropout of the head", 0.0, 0.99)
    augment: bool = param("apply aug_transforms")
    aug: dict = param("arguments of fastai's aug_transforms (do_flip, max_rotate, max_warp, ...)")
    schedule: Literal["lesson", "fine_tune"] = param("lesson (two fit_one_cycle phases, lr_find between) | "
                                                     "fine_tune (fastai's fine_tune)")
    resize: Literal["squish", "random_resized_crop"] = param("training item transform: squish | "
                                                             "random_resized_crop (validation always squishes)")
    min_scale: float = param("random_resized_crop: smallest share of the image area a crop keeps", 0.01, 1.0)
    seed: int = param("seed of weights, batches and augmentation")
    device: Literal["auto", "cpu", "cuda"] = param("auto | cpu | cuda")
    mixed_precision: Union[bool, str] = param("auto (on with CUDA) | true | false")
    channels_last: bool = param("channels-last memory format")
    num_workers: int = param("data-loading processes", 0, 64)
    diagnose: DiagnoseParams = param("thresholds of the training diagnosis")

    def check(self, key: str) -> None:
        from . import archs  # torch-heavy: only stages that train pay for it

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
        if not self.lr > 0 or self.lr >= 100:
            raise ParamsError(f"{key}.lr: {self.lr!r} must be > 0 and < 100")
        if self.lr_min != "auto" and (isinstance(self.lr_min, str) or not 0 < self.lr_min < 100):
            raise ParamsError(f"{key}.lr_min: {self.lr_min!r} must be 'auto' (the LR finder's "
                              "suggestion) or a number > 0")
        check_aug(f"{key}.aug", self.aug)
        if isinstance(self.mixed_precision, str) and self.mixed_precision != "auto":
            raise ParamsError(f"{key}.mixed_precision: {self.mixed_precision!r} must be auto, true or false")


@dataclass(frozen=True)
class CrossvalParams:
    """K-fold models for out-of-sample probabilities, which rank the cleaning candidates (stage crossval)."""
    folds: int = param("number of folds", 2, 20)
    epochs: int = param("epochs per fold model", 1, 1000)
    lr: float = param("learning rate of the fold models")
    img_size: int = param("image side for the folds: smaller is cheaper, but weaker folds rank noisy labels worse",
                        16, 2048)
    feature_probe: bool = param("also fit a logistic regression per fold on pretrained EfficientNet-Lite0 "
                                "features (at img_size) and average its probabilities with the fold models'")

    def check(self, key: str) -> None:
        if not 0 < self.lr < 100:
            raise ParamsError(f"{key}.lr: {self.lr!r} must be > 0 and < 100")


@dataclass(frozen=True)
class InterpretParams:
    """What the trained model gets wrong, and which images look mislabeled or out of place (stage interpret)."""
    top_k: int = param("images in the top-losses grid", 1, 1000)
    min_confused: int = param("least count of a most-confused pair", 1, 10**6)
    batch_size: int = param("images per inference batch", 1, 4096)
    method: Literal["top_losses", "confident_learning"] = param("how candidates are ranked")
    probabilities: Literal["out_of_sample", "in_sample"] = param("out_of_sample (crossval) | in_sample "
                                                               "(the trained model's own)")
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                       "predicted_neq_given", "low_normalized_margin", "low_self_confidence"] = param(
        "cleanlab find_label_issues filter_by")
    rank_by: Literal["self_confidence", "normalized_margin", "confidence_weighted_entropy"] = param(
        "cleanlab label-quality method")
    ood_method: Literal["appearance", "embedding", "entropy", "least_confidence", "cleanlab"] = param(
        "out-of-place score: appearance (crossval's stem statistics) | embedding (pretrained-feature "
        "neighbours) | entropy | least_confidence | cleanlab")
    ood_threshold: float = param("out-of-place score at or above which an image is flagged likely_out_of_place",
                               0.0, 1.0)
    embed_size: int = param("ood_method embedding: side the images are squished to, in pixels", 32, 1024)
    knn_k: int = param("ood_method embedding: nearest images of each class an image's distance averages "
                       "(more than a few, so a handful of look-alike outliers cannot hide each other)", 1, 100)
    fault_threshold: float = param("out-of-sample p(label), calibrated to the labels, at or below which the "
                                   "label counts as contradicted (noise.json, the policy's evidence)", 0.0, 0.5)
    min_agreement: float = param("share of the given labels the fold models must agree with for their "
                                 "contradictions to count as evidence (else no evident faults)", 0.0, 1.0)


@dataclass(frozen=True)
class MinScore:
    """The automatic policy's score thresholds: one per ranking method, one for the out-of-place score."""
    top_losses: float = param("cross-entropy at or above which top_losses candidates act (2.3: p < 0.1)", 0.0, 1e3)
    confident_learning: float = param("1 - label quality at or above which confident_learning candidates act",
                                    0.0, 1.0)
    out_of_place: float = param("out-of-place score at or above which an image is dropped", 0.0, 1.0)


@dataclass(frozen=True)
class CleanParams:
    """Human decisions first, then the automatic policy (stage clean)."""
    decisions: str = param("the decisions file that `bearid review` writes")
    min_score: MinScore = param("thresholds of the automatic policy")
    max_removed: Union[int, str] = param("most images the policy drops: estimate (the evident faults of "
                                         "data/interpret/noise.json not already fixed by the decisions) | a number")
    beyond_estimate: bool = param("let the decisions or max_removed remove more images than the evident faults")

    def check(self, key: str) -> None:
        if self.max_removed != "estimate" and (isinstance(self.max_removed, str) or self.max_removed < 0):
            raise ParamsError(f"{key}.max_removed: {self.max_removed!r} must be 'estimate' or a number >= 0")


@dataclass(frozen=True)
class EvaluateParams:
    """Test metrics of both models (stage evaluate)."""
    batch_size: int = param("images per inference batch", 1, 4096)


RETRAIN_MEANING = "as the train key of the same name, for the final model; null takes train's value"
SECTIONS: dict[str, type] = {
    "fetch": FetchParams, "download": DownloadParams, "verify": VerifyParams,
    "split": SplitParams, "train": TrainParams, "crossval": CrossvalParams, "interpret": InterpretParams,
    "clean": CleanParams, "retrain": TrainParams, "evaluate": EvaluateParams,
}


def load(section: str, path: Path | str = PARAMS_FILE) -> Any:
    """Read one section of params.yaml into its validated dataclass (retrain: train's, merged).

    train and retrain are checked together: retrain's keys must make valid train
    params, and that should fail when train starts, not an hour later.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run stages from the project folder (where params.yaml is)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected sections (fetch:, download:, ...), got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{path}: unknown sections {unknown}; allowed: {sorted(SECTIONS)}")
    needed = {section, "train", "retrain"} if section in ("train", "retrain") else {section}
    missing = sorted(needed - set(raw))
    if missing:
        raise ParamsError(f"{path}: missing sections {missing}; see docs/parameters.md")
    if section in ("train", "retrain"):
        retrain = final(raw["train"], raw["retrain"])
        if section == "retrain":
            return retrain
    return parse(section, raw[section])


def check_size(size_key: str, img_size: int, path: Path | str = PARAMS_FILE) -> None:
    """Across sections: a stage that trains at `img_size` refuses images verify shrank below it."""
    max_size = load("verify", path).max_size
    if max_size < img_size:
        raise ParamsError(f"verify.max_size ({max_size}) is below {size_key} ({img_size}): verified images "
                          f"are at most {max_size} px, so training would upscale them; raise verify.max_size "
                          f"to at least {img_size} or lower {size_key}")


def parse(section: str, values: Any) -> Any:
    """Validate a mapping holding every key of the section (used by `load` and by tests)."""
    return _build(SECTIONS[section], values, section)


def final(train: Any, retrain: Any) -> TrainParams:
    """The final model's settings: each retrain key that is not null replaces train's."""
    if not isinstance(retrain, dict):
        raise ParamsError(f"retrain: expected a mapping of keys, got {retrain!r}")
    _known(TrainParams, retrain, "retrain")
    parse("train", train)  # train's own errors are named as train's
    return _build(TrainParams, {**train, **{k: v for k, v in retrain.items() if v is not None}}, "retrain")


def _known(cls: type, values: dict, key: str, partial: bool = False) -> None:
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamsError(f"{key}: unknown keys {unknown}; allowed: {sorted(fields)}")
    missing = [] if partial else [f for f in fields if f not in values]
    if missing:
        raise ParamsError(f"{key}: missing keys {missing}; params.yaml holds every key (docs/parameters.md)")


def _build(cls: type, values: Any, key: str) -> Any:
    if not isinstance(values, dict):
        raise ParamsError(f"{key}: expected a mapping of keys, got {values!r}")
    _known(cls, values, key, partial=True)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _coerce(hints[f.name], values[f.name], f"{key}.{f.name}")
            if f.metadata["range"] is not None:
                _range(f"{key}.{f.name}", kwargs[f.name], *f.metadata["range"])
    _known(cls, values, key)
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
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
