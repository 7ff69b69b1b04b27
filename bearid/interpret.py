"""What the models get wrong, and which images a person should look at first.

Two kinds of probabilities for every train and valid image:

- in-sample: the trained model's own (fastai's top losses, the lesson's way);
  it has learned its training labels, wrong ones included, so it hides them;
- out-of-sample: from the crossval stage, each image scored by a model that
  never saw it.

Ranking methods (`interpret.method`) turn probabilities into a mislabel score
(higher: more suspicious) and a flag:

- top_losses: cross-entropy on the given label; flagged when the model
  prefers another class;
- confident_learning: cleanlab's `find_label_issues` (`filter_by`) flags,
  1 - cleanlab's label quality (`rank_by`) scores.

An out-of-place score in [0, 1] flags an image as likely_out_of_place at
`ood_threshold`; that reason wins over likely_mislabeled. `ood_method`:
appearance (the crossval stage's stem-statistics distance, see `outliers`: an
image of no class looks unlike the rest even when a model is sure of it; it
measures colour and texture), embedding (distance to the nearest class's
images in pretrained features, see `embeddings`: what an image shows, for real
photos), or from probabilities: entropy, least_confidence, or cleanlab's
out-of-distribution score. Candidates are ordered for review and clean:
likely_out_of_place first (by that score), then likely_mislabeled, then the
rest (by mislabel score).

Every candidate also carries `given_prob`, the out-of-sample probability of
its label calibrated to the labels, and `noise.json` the evident number of
label faults with that calibration's temperature (see `noise`): the evidence
the automatic cleaning policy acts on.

The trained model's valid split also gives the confusion matrix, most-confused
pairs and per-class precision/recall, through fastai's ClassificationInterpretation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from fastai.interpret import ClassificationInterpretation  # noqa: E402
from fastai.learner import Learner  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from sklearn.metrics import precision_recall_fscore_support  # noqa: E402

from . import params  # noqa: E402
from .atomic import atomic_open, write_csv, write_json  # noqa: E402
from .crossval import APPEARANCE, read_probs  # noqa: E402
from .embeddings import embedding_scores  # noqa: E402
from .export import WEIGHTS, read_meta  # noqa: E402
from .learner import build_learner, dataloaders  # noqa: E402
from .noise import estimate, given_probs, scaled  # noqa: E402
from .outliers import appearance_score  # noqa: E402
from .params import InterpretParams  # noqa: E402
from .plots import save_figure  # noqa: E402
from .progress import log  # noqa: E402
from .vocab import MISLABELED, OUT_OF_PLACE  # noqa: E402

METHODS = ("top_losses", "confident_learning")
SOURCES = ("in_sample", "out_of_sample")
CANDIDATE_FIELDS = ["path", "label", "suggested", "score", "ood_score", "given_prob", "method", "reason", "thumb",
                    "split"]
THUMB_SIZE = 128


# --- ranking: probabilities in, scores and flags out (no model, no files) -------------------------

def cross_entropy(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """-log p(given label), clipped so a zero probability gives a large finite loss."""
    return -np.log(np.clip(probs[np.arange(len(given)), given], 1e-12, 1.0))


def mislabel_scores(probs: np.ndarray, given: np.ndarray, method: str, filter_by: str = "prune_by_noise_rate",
                    rank_by: str = "self_confidence") -> tuple[np.ndarray, np.ndarray]:
    """(score, flagged) per image: higher scores are more suspicious."""
    if method == "top_losses":
        return cross_entropy(probs, given), probs.argmax(1) != given
    if method == "confident_learning":
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        quality = get_label_quality_scores(given, probs, method=rank_by)
        flagged = find_label_issues(given, probs, filter_by=filter_by)
        return 1.0 - quality, np.asarray(flagged, dtype=bool)
    raise ValueError(f"unknown ranking method {method!r}; one of {list(METHODS)}")


def out_of_place_scores(probs: np.ndarray, given: np.ndarray, method: str,
                        appearance: np.ndarray | None = None, embedding: np.ndarray | None = None) -> np.ndarray:
    """How little an image looks like any class, in [0, 1]: higher is more out of place.

    `embedding` holds the embedding method's scores, already in [0, 1] (`embeddings.knn_out_of_place`).
    """
    k = probs.shape[1]
    if method == "appearance":
        if appearance is None:
            raise ValueError("ood_method appearance needs the crossval stage's appearance column")
        return appearance_score(appearance)
    if method == "embedding":
        if embedding is None:
            raise ValueError("ood_method embedding needs the images' embedding scores")
        return np.asarray(embedding, dtype=np.float64)
    if method == "entropy":
        p = np.clip(probs, 1e-12, 1.0)
        return -(p * np.log(p)).sum(1) / np.log(k)
    if method == "least_confidence":
        return (1.0 - probs.max(1)) / (1.0 - 1.0 / k)
    if method == "cleanlab":
        from cleanlab.outlier import OutOfDistribution

        return 1.0 - OutOfDistribution().fit_score(pred_probs=probs, labels=given, verbose=False)
    raise ValueError(f"unknown out-of-place method {method!r}; "
                     "one of appearance, embedding, entropy, least_confidence, cleanlab")


def suggest(probs: np.ndarray, given: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """The model's class; for a flagged image whose top class is its own label, the runner-up."""
    order = np.argsort(-probs, axis=1, kind="stable")
    return np.where(flagged & (order[:, 0] == given), order[:, 1], order[:, 0])


def rank(probs: np.ndarray, given: np.ndarray, p: InterpretParams,
         appearance: np.ndarray | None = None, embedding: np.ndarray | None = None) -> pd.DataFrame:
    """Per image: score, ood_score, reason, suggested class index and review order (0 first)."""
    score, flagged = mislabel_scores(probs, given, p.method, p.filter_by, p.rank_by)
    ood = out_of_place_scores(probs, given, p.ood_method, appearance, embedding)
    out_of_place = ood >= p.ood_threshold
    reason = np.where(out_of_place, OUT_OF_PLACE, np.where(flagged, MISLABELED, ""))
    group = np.where(out_of_place, 0, np.where(flagged, 1, 2))
    order = np.lexsort((np.where(out_of_place, -ood, -score), group))  # most suspicious first in each group
    position = np.empty(len(order), dtype=int)
    position[order] = np.arange(len(order))
    return pd.DataFrame({"score": score, "ood_score": ood, "reason": reason,
                         "suggested": suggest(probs, given, reason != ""), "order": position})


# --- outputs ---------------------------------------------------------------------------------------

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


def write_thumbnail(src: Path, dst: Path) -> None:
    """A small JPEG for the review page; never upscaled."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.thumbnail((THUMB_SIZE, THUMB_SIZE))
        with atomic_open(dst, "wb") as f:
            im.save(f, format="JPEG", quality=85)


def plot_top_losses(rows: pd.DataFrame, probs: np.ndarray, vocab: list[str], k: int, path: Path) -> None:
    """fastai's plot_top_losses look: the k highest losses, titled predicted/actual/loss/probability."""
    given = np.array([vocab.index(label) for label in rows["label"]])
    losses = cross_entropy(probs, given)
    top = np.argsort(-losses, kind="stable")[:k]
    ncols = max(1, int(np.ceil(np.sqrt(len(top)))))
    nrows = max(1, int(np.ceil(len(top) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.6 * nrows), squeeze=False)
    fig.suptitle("predicted/actual/loss/probability")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, top):
        with Image.open(rows["path"].iloc[i]) as im:
            ax.imshow(im.convert("RGB"))
        pred = int(probs[i].argmax())
        ax.set_title(f"{vocab[pred]}/{vocab[given[i]]}\n{losses[i]:.2f} / {probs[i, pred]:.2f}", fontsize=9)
    save_figure(fig, path)


def per_class_rows(actual: list[str], predicted: list[str], vocab: list[str]) -> list[dict]:
    p, r, f, n = precision_recall_fscore_support(actual, predicted, labels=vocab, zero_division=0)
    return [{"class": c, "precision": f"{p[i]:.4f}", "recall": f"{r[i]:.4f}", "f1": f"{f[i]:.4f}",
             "support": int(n[i])} for i, c in enumerate(vocab)]


def valid_outputs(learn: Learner, out_dir: Path, min_confused: int) -> list[dict]:
    """Confusion PNG/CSV, most-confused pairs and per-class precision/recall on the valid split."""
    vocab = list(learn.dls.vocab)
    with learn.no_bar():
        interp = ClassificationInterpretation.from_learner(learn)
        interp.plot_confusion_matrix(figsize=(4 + len(vocab) / 2, 4 + len(vocab) / 2))
        save_figure(plt.gcf(), out_dir / "confusion.png")
        pairs = [{"actual": a, "predicted": b, "count": int(n)} for a, b, n in interp.most_confused(min_confused)]
    write_csv(out_dir / "most_confused.csv", pairs, ["actual", "predicted", "count"])
    with learn.no_bar():
        probs, targs = learn.get_preds(dl=learn.dls.valid)
    actual = [vocab[i] for i in targs.tolist()]
    predicted = [vocab[i] for i in probs.argmax(dim=1).tolist()]
    write_csv(out_dir / "confusion.csv", ({"actual": a, "predicted": b} for a, b in zip(actual, predicted)),
              ["actual", "predicted"])
    write_csv(out_dir / "per_class.csv", per_class_rows(actual, predicted, vocab),
              ["class", "precision", "recall", "f1", "support"])
    return pairs


def ranking_columns(rows: pd.DataFrame, probs: dict[str, np.ndarray], given: np.ndarray,
                    p: InterpretParams, appearance: np.ndarray,
                    embedding: np.ndarray | None = None) -> pd.DataFrame:
    """Every method on both kinds of probabilities, for evaluation against a ground truth."""
    out = rows[["path", "label", "split"]].copy()
    for source, source_probs in probs.items():
        for method in METHODS:
            r = rank(source_probs, given, dataclasses.replace(p, method=method), appearance, embedding)
            out[f"{method}_{source}_order"] = r["order"]
            out[f"{method}_{source}_reason"] = r["reason"]
        out[f"ood_{source}"] = r["ood_score"].round(6)  # the same whichever ranking method
    return out


def interpret(model_dir: Path, manifest_csv: Path, oos_probs_csv: Path, out_dir: Path,
              p: InterpretParams) -> dict:
    """Write the valid-split diagnostics, the top-loss grid, the ranked candidates and their thumbnails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = pd.read_csv(manifest_csv)
    rows = manifest[manifest["split"].isin(["train", "valid"])].reset_index(drop=True)
    oos_rows, oos, oos_vocab = read_probs(oos_probs_csv)
    if oos_vocab != sorted(manifest["label"].unique()) or oos_rows["path"].tolist() != rows["path"].tolist():
        raise ValueError(f"{oos_probs_csv}: out-of-sample probabilities are for other images or classes "
                         "than the manifest; rerun the crossval stage")
    embedding = None
    if p.ood_method == "embedding":  # first: missing weights stop the stage before anything else runs
        embedding, seconds = embedding_scores(rows["path"].tolist(), rows["label"].to_numpy(), p.embed_size,
                                              p.knn_k, p.batch_size)
        log("interpret", f"embedded {len(rows)} images at {p.embed_size}px in {seconds:.1f}s")
    learn = load_learner_for(model_dir, manifest, p.batch_size, out_dir)
    vocab = list(learn.dls.vocab)
    pairs = valid_outputs(learn, out_dir, p.min_confused)
    with learn.no_bar():
        in_sample, _ = learn.get_preds(dl=learn.dls.test_dl(rows, with_labels=True))
    probs = {"in_sample": in_sample.double().numpy(), "out_of_sample": oos}
    given = np.array([vocab.index(label) for label in rows["label"]])
    chosen = probs[p.probabilities]

    appearance = oos_rows[APPEARANCE].to_numpy(dtype=np.float64)
    ranked = rank(chosen, given, p, appearance, embedding)
    noise = estimate(oos, given, p.fault_threshold, p.min_agreement)  # out of sample whatever ranks: a model never confirms itself
    write_json(out_dir / "noise.json", dataclasses.asdict(noise))
    thumbs = out_dir / "thumbs"
    rows = rows.assign(score=ranked["score"], ood_score=ranked["ood_score"], reason=ranked["reason"],
                       given_prob=given_probs(scaled(oos, noise.temperature), given),
                       suggested=[vocab[i] for i in ranked["suggested"]], order=ranked["order"],
                       thumb=[(thumbs / f"{Path(x).stem}.jpg").as_posix() for x in rows["path"]])
    for src, dst in zip(rows["path"], rows["thumb"]):
        write_thumbnail(Path(src), Path(dst))
    candidates = rows.sort_values("order")
    write_csv(out_dir / "candidates.csv",
              ({"path": r.path, "label": r.label, "suggested": r.suggested, "score": f"{r.score:.6g}",
                "ood_score": f"{r.ood_score:.6g}", "given_prob": f"{r.given_prob:.6g}", "method": p.method, "reason": r.reason,
                "thumb": r.thumb, "split": r.split} for r in candidates.itertuples()),
              CANDIDATE_FIELDS)
    rankings = ranking_columns(rows, probs, given, p, appearance, embedding)
    write_csv(out_dir / "rankings.csv", rankings.to_dict("records"), list(rankings.columns))
    plot_top_losses(rows, chosen, vocab, min(p.top_k, len(rows)), out_dir / "top_losses.png")
    return {"most_confused": pairs, "n_ranked": len(rows), "noise": noise,
            "flagged": {reason: int((rows["reason"] == reason).sum()) for reason in (MISLABELED, OUT_OF_PLACE)}}
