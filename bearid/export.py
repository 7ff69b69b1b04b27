"""The exported model: safetensors weights plus a JSON describing how to use them.

Loading runs no pickle: the JSON names the architecture, the weights file holds
plain tensors, and the model is rebuilt from fastai's architecture code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from fastai.vision.learner import create_vision_model
from safetensors.torch import load_file, save

from .archs import resolve
from .atomic import atomic_write_bytes, write_json
from .params import TrainParams

WEIGHTS = "model.safetensors"
META = "model.json"


def save_model(model: torch.nn.Module, classes: list[str], p: TrainParams,
               stats: tuple[list[float], list[float]], out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save(state)
    atomic_write_bytes(out_dir / WEIGHTS, data)
    meta = {
        "arch": p.arch,
        "classes": list(classes),
        "img_size": p.img_size,
        "resize": "squish",
        "mean": list(map(float, stats[0])),
        "std": list(map(float, stats[1])),
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "params": asdict(p),
    }
    write_json(out_dir / META, meta)
    return meta


def read_meta(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / META).read_text())


def load_model(model_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network from its JSON and load its weights, in eval mode."""
    meta = read_meta(model_dir)
    model = create_vision_model(resolve(meta["arch"]), len(meta["classes"]), pretrained=False,
                                ps=meta["params"].get("ps", 0.5))
    model.load_state_dict(load_file(model_dir / WEIGHTS))
    return model.eval(), meta
