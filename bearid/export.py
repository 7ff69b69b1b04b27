"""The exported model: safetensors weights plus a JSON describing how to use them.

Loading runs no pickle: the JSON names the architecture, the weights file holds
plain tensors (safetensors), and the network is rebuilt from fastai's
architecture code. The JSON also says where the model came from (params, git
revision) and carries the weights' sha256, checked on load, so a JSON paired
with the wrong weights fails loudly instead of predicting nonsense.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from .archs import network
from .atomic import atomic_write_bytes, write_json
from .params import TrainParams

WEIGHTS = "model.safetensors"
META = "model.json"
FORMAT = 1  # bumped when model.json changes meaning


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
    write_json(out_dir / META, meta)
    return meta


def read_meta(model_dir: Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / META).read_text())


def load_model(model_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network from its JSON and load its weights (checked against the hash), in eval mode."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    data = (model_dir / WEIGHTS).read_bytes()
    expected = meta.get("weights_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"{model_dir / WEIGHTS}: sha256 differs from {META}'s weights_sha256; "
                         "the two files come from different exports")
    with torch.device("meta"):  # shapes only: random init would be thrown away (and costs seconds)
        model = network(meta["arch"], len(meta["classes"]), ps=meta["params"].get("ps", 0.5))
    model.load_state_dict(load(data), assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise ValueError(f"{model_dir / WEIGHTS}: weights missing for part of {meta['arch']}")
    return model.eval(), meta

