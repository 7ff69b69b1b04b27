"""What the trained model gets wrong, with fastai's ClassificationInterpretation.

Valid images give the confusion matrix and the most-confused pairs; every train
and valid image is ranked by its loss on its given label to make the cleaning
candidates (the lesson's top losses).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from fastai.interpret import ClassificationInterpretation  # noqa: E402
from fastai.learner import Learner  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from .atomic import write_csv  # noqa: E402
from .export import WEIGHTS, read_meta  # noqa: E402
from .learner import build_learner, dataloaders  # noqa: E402
from . import params  # noqa: E402
from .plots import save_figure  # noqa: E402

CANDIDATE_FIELDS = ["path", "label", "predicted", "loss", "probability", "split"]


def load_learner_for(model_dir: Path, manifest: pd.DataFrame, batch_size: int, work_dir: Path) -> Learner:
    """A fastai Learner over the manifest with the exported weights (no pickle), on the CPU."""
    meta = read_meta(model_dir)
    p = params.parse("train", {**meta["params"], "pretrained": False, "batch_size": batch_size,
                               "device": "cpu", "mixed_precision": False, "augment": False})
    dls = dataloaders(manifest, p)
    if list(dls.vocab) != meta["classes"]:
        raise ValueError(f"{model_dir}: model classes {meta['classes']} differ from the manifest's "
                         f"{list(dls.vocab)}")
    learn = build_learner(dls, p, work_dir)
    learn.model.load_state_dict(load_file(model_dir / WEIGHTS))
    return learn


def interpret(model_dir: Path, manifest_csv: Path, out_dir: Path, top_k: int,
              min_confused: int, batch_size: int) -> dict:
    """Write confusion (CSV + PNG), most-confused pairs, the top-loss grid and ranked candidates."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = pd.read_csv(manifest_csv)
    learn = load_learner_for(model_dir, manifest, batch_size, out_dir)
    vocab = list(learn.dls.vocab)

    valid = ClassificationInterpretation.from_learner(learn)
    valid.plot_confusion_matrix(figsize=(4 + len(vocab) / 2, 4 + len(vocab) / 2))
    save_figure(plt.gcf(), out_dir / "confusion.png")
    pairs = [{"actual": a, "predicted": b, "count": int(n)} for a, b, n in valid.most_confused(min_confused)]
    write_csv(out_dir / "most_confused.csv", pairs, ["actual", "predicted", "count"])

    rows = manifest[manifest["split"].isin(["train", "valid"])].reset_index(drop=True)
    dl = learn.dls.test_dl(rows, with_labels=True)
    probs, targets, losses = learn.get_preds(dl=dl, with_loss=True)
    predicted = probs.argmax(dim=1)
    rows = rows.assign(predicted=[vocab[i] for i in predicted.tolist()], loss=losses.numpy(),
                       probability=probs.max(dim=1).values.numpy())

    write_csv(out_dir / "confusion.csv",
              ({"actual": r.label, "predicted": r.predicted} for r in rows[rows.split == "valid"].itertuples()),
              ["actual", "predicted"])

    ranked = rows.sort_values("loss", ascending=False, kind="stable")
    write_csv(out_dir / "candidates.csv",
              ({"path": r.path, "label": r.label, "predicted": r.predicted, "loss": f"{r.loss:.6g}",
                "probability": f"{r.probability:.6g}", "split": r.split} for r in ranked.itertuples()),
              CANDIDATE_FIELDS)

    ranked_all = ClassificationInterpretation(learn, dl, losses)
    ranked_all.plot_top_losses(min(top_k, len(rows)), nrows=max(1, round(min(top_k, len(rows)) ** 0.5)))
    save_figure(plt.gcf(), out_dir / "top_losses.png")
    return {"most_confused": pairs, "n_ranked": len(rows)}
