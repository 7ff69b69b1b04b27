"""The exported model: safetensors weights plus a JSON describing how to use them.

Loading runs no pickle: the JSON names the architecture, the weights file holds
plain tensors (safetensors), and the network is rebuilt from fastai's
architecture code. The JSON also says where the model came from (params, git
revision) and carries two hashes, both checked on load: the weights' sha256 and
`meta_sha256`, over the JSON's own content. A JSON paired with the wrong weights,
or edited after export (a reordered class list would silently swap the labels),
is refused before a prediction is made, as is every malformed field. The hashes
catch accidents and mismatched copies; someone who can rewrite the folder can
rewrite the hashes too, so a model folder is trusted as much as its source.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from .archs import check, network
from .atomic import atomic_write_bytes, write_json
from .params import TrainParams

WEIGHTS = "model.safetensors"
META = "model.json"
FORMAT = 2  # bumped when model.json changes meaning (2: meta_sha256 added)
SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelError(ValueError):
    """An exported model folder that cannot be used as it is; the message names the file and field."""


def git_revision(cwd: Path | str = ".") -> str | None:
    """The commit the model was trained from (DVC runs stages in the repo), or None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def save_model(model: torch.nn.Module, classes: list[str], p: TrainParams,
               stats: tuple[list[float], list[float]], out_dir: Path) -> dict[str, Any]:
    """Write model.safetensors and model.json into out_dir; return the JSON's content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save(state)
    atomic_write_bytes(out_dir / WEIGHTS, data)
    meta = {
        "format": FORMAT,
        "arch": p.arch,
        "classes": list(classes),
        "img_size": p.img_size,
        "resize": "squish",
        "mean": list(map(float, stats[0])),
        "std": list(map(float, stats[1])),
        "weights": WEIGHTS,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "params": asdict(p),
        "git_revision": git_revision(),
    }
    meta["meta_sha256"] = meta_hash(meta)
    write_json(out_dir / META, meta)
    return meta


def meta_hash(meta: dict[str, Any]) -> str:
    """sha256 of the JSON's content without this hash, in one canonical spelling."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_meta(model_dir: Path) -> dict[str, Any]:
    """model.json, checked field by field and against its own hash; ModelError says what is wrong."""
    path = Path(model_dir) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: not found; export a model first (dvc repro) or pass another folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: expected a JSON object")
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path}: format {meta.get('format')!r}, this bearid reads format {FORMAT}; "
                         "export the model again with this version")
    problem = field_problem(meta)
    if problem:
        raise ModelError(f"{path}: {problem}")
    if meta_hash(meta) != meta["meta_sha256"]:
        raise ModelError(f"{path}: content differs from its meta_sha256: the file was changed after export "
                         "(e.g. the class list edited); export the model again")
    return meta


def field_problem(meta: dict[str, Any]) -> str:
    """What is wrong with the fields load_model and predict use, or "" when nothing is."""
    def numbers(v: Any, n: int) -> bool:
        return isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and
                                                           not isinstance(x, bool) for x in v)
    classes = meta.get("classes")
    checks = [
        ("arch", isinstance(meta.get("arch"), str), "an architecture name"),
        ("classes", isinstance(classes, list) and len(classes) >= 2 and
         all(isinstance(c, str) and c for c in classes) and len(set(classes)) == len(classes),
         "a list of two or more distinct class names"),
        ("img_size", isinstance(meta.get("img_size"), int) and 16 <= meta["img_size"] <= 2048,
         "an integer in [16, 2048]"),
        ("resize", meta.get("resize") == "squish", "'squish'"),
        ("mean", numbers(meta.get("mean"), 3), "three numbers"),
        ("std", numbers(meta.get("std"), 3) and all(x > 0 for x in meta["std"]), "three positive numbers"),
        ("weights", meta.get("weights") == WEIGHTS, repr(WEIGHTS)),
        ("weights_sha256", isinstance(meta.get("weights_sha256"), str) and SHA256.fullmatch(meta["weights_sha256"]),
         "64 hex digits"),
        ("meta_sha256", isinstance(meta.get("meta_sha256"), str) and SHA256.fullmatch(meta["meta_sha256"]),
         "64 hex digits"),
        ("params", isinstance(meta.get("params"), dict) and isinstance(meta["params"].get("ps", 0.5), (int, float)),
         "the training params (an object)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            shown = json.dumps(meta.get(key))
            return f"{key} is {shown[:80]}, expected {expected}"
    return ""


def load_model(model_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network from its JSON and load its weights (checked against the hash), in eval mode."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    try:
        data = (model_dir / WEIGHTS).read_bytes()
    except OSError as e:
        raise ModelError(f"{model_dir / WEIGHTS}: cannot read: {e.strerror}") from None
    if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
        raise ModelError(f"{model_dir / WEIGHTS}: sha256 differs from {META}'s weights_sha256; "
                         "the two files come from different exports")
    try:
        check(meta["arch"], f"{META} arch")
    except ValueError as e:
        raise ModelError(f"{model_dir / META}: {e}") from None
    with torch.device("meta"):  # shapes only: random init would be thrown away (and costs seconds)
        model = network(meta["arch"], len(meta["classes"]), ps=meta["params"].get("ps", 0.5))
    try:
        model.load_state_dict(load(data), assign=True)
    except (RuntimeError, ValueError) as e:  # safetensors' and torch's shape / key errors
        raise ModelError(f"{model_dir / WEIGHTS}: does not fit {meta['arch']} with {len(meta['classes'])} "
                         f"classes: {str(e).splitlines()[0][:200]}") from None
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise ModelError(f"{model_dir / WEIGHTS}: weights missing for part of {meta['arch']}")
    return model.eval(), meta

