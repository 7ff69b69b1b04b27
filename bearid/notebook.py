"""For notebook users: an exported model folder back as a fastai Learner, without unpickling anything."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from fastai.learner import Learner
from PIL import Image

from .export import load_model
from .learner import build_learner, dataloaders
from .params import parse


def learner_from_folder(model_dir: Path | str, root: Path | str = ".", device: str = "cpu") -> Learner:
    """A fastai Learner from an exported folder, for notebooks: no pickle runs (unlike `load_learner`).

    The network and its checked weights come from `load_model`; the data
    pipeline is rebuilt from model.json (classes, size, normalisation) over no
    images, so `learn.predict(path)` works at once, and
    `learn.dls.test_dl(df, with_labels=True)` on a DataFrame with `path` and
    `label` columns (paths relative to `root`) feeds `get_preds` or
    `ClassificationInterpretation.from_learner(learn, dl=...)`.
    """
    model, meta = load_model(Path(model_dir))
    p = parse("train", {**meta["params"], "pretrained": False, "device": device,
                        "mixed_precision": False, "augment": False, "num_workers": 0})
    with tempfile.TemporaryDirectory(prefix="bearid-") as tmp:  # fastai infers types from one item
        placeholder = Path(tmp) / "placeholder.png"
        Image.new("RGB", (p.img_size, p.img_size)).save(placeholder)
        rows = [{"path": os.path.relpath(placeholder, root), "label": meta["classes"][0], "split": split}
                for split in ("train", "valid")]
        dls = dataloaders(pd.DataFrame(rows), p, root=Path(root), vocab=meta["classes"]).new_empty()
    learn = build_learner(dls, p, Path(model_dir))
    learn.model.load_state_dict(model.state_dict())
    return learn
