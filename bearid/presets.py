"""`bearid preset real-photos`: one switch from the offline demo to real bear photos.

The demo's params suit 64 px digits trained from scratch; real photos want a
pretrained body at a size that still trains on a CPU. The preset sets every
key that must change together (source, classes, sizes in verify, train and
crossval, the pretrained EfficientNet-Lite0 body and its fine-tuning rates,
the out-of-place score from pretrained features), validates the result as the
stages will, and rewrites params.yaml keeping its comments. `dvc repro` then
runs the pipeline on the new params.

    bearid preset real-photos                  # DuckDuckGo image search
    bearid preset real-photos --source files   # your URL lists in urls/<class>.txt
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from ruamel.yaml import YAML

from . import params

REAL_PHOTOS: dict = {
    "fetch": {"source": "ddg", "classes": ["grizzly", "black", "teddy"], "query": "{cls} bear",
              "max_per_class": 150},
    "download": {"file_dir": ""},
    "verify": {"max_size": 128},
    "train": {"arch": "efficientnet_lite0", "pretrained": True, "img_size": 128, "batch_size": 32,
              "schedule": "fine_tune", "freeze_epochs": 2, "epochs": 4, "lr": 2e-3,
              "augment": True, "aug": {"do_flip": True, "max_rotate": 10.0, "max_warp": 0.2},
              "resize": "squish"},
    # folds fitted hard enough to be evidence, steadied by a linear probe on the pretrained features
    "crossval": {"img_size": 128, "epochs": 6, "lr": 1e-2, "feature_probe": True},
    # colour and texture set a teddy apart from a bear, not only a photo of no bear: judge what images show
    "interpret": {"ood_method": "embedding", "ood_threshold": 0.7},
}
PRESETS = {"real-photos": REAL_PHOTOS}
WHOLE = ("aug",)  # mappings that are one value (train.aug): replaced whole, never merged key by key


def merge(base, update: dict):
    """`update` written into `base` key by key (nested mappings merged, the rest replaced)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in WHOLE:
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def dotted(update: dict, prefix: str = "") -> dict:
    """`update`'s values by dotted key (train.lr), as `dvc exp run -S` names them."""
    out = {}
    for key, value in update.items():
        if isinstance(value, dict) and key not in WHOLE:
            out.update(dotted(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def apply(name: str, path: Path, source: str | None = None) -> dict:
    """Write preset `name` into the params file at `path`; return the keys set. Nothing is written
    unless the whole result validates (every section, and the sizes across sections)."""
    if name not in PRESETS:
        raise params.ParamsError(f"unknown preset {name!r}; one of {sorted(PRESETS)}")
    preset = copy.deepcopy(PRESETS[name])
    if source:
        preset["fetch"]["source"] = source
    yaml = YAML()  # round trip: keeps the file's comments and order
    yaml.preserve_quotes = True
    doc = yaml.load(path.read_text()) or {}
    merge(doc, preset)
    staged = path.with_name(f".{path.name}.preset")
    with open(staged, "w") as f:
        yaml.dump(doc, f)
    try:
        for section in params.SECTIONS:
            params.load(section, staged)
        params.check_size("train.img_size", params.load("train", staged).img_size, staged)
        params.check_size("crossval.img_size", params.load("crossval", staged).img_size, staged)
    except params.ParamsError:
        staged.unlink()
        raise
    staged.replace(path)
    return preset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bearid preset", description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(PRESETS))
    ap.add_argument("--source", choices=["ddg", "files"], help="where the image URLs come from (default ddg)")
    ap.add_argument("--params", type=Path, default=params.PARAMS_FILE, help="the params file to rewrite")
    args = ap.parse_args(argv)
    if not args.params.is_file():
        ap.error(f"argument --params: {args.params} not found")
    try:
        preset = apply(args.name, args.params, args.source)
    except params.ParamsError as e:
        print(f"bearid preset: error: {e}", file=sys.stderr)
        return 2
    for section, values in preset.items():
        print(f"{section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(f"wrote {args.params}; run `dvc repro`")
    return 0
