"""Test-split metrics of the model before and after cleaning, and, on the demo, against the truth.

Both models are scored on the same images: the test split of the cleaned
manifest (the policy never touches test images; a human may fix their labels).
On the demo, the ground truth of the injected faults also tells how many of
them cleaning removed, how accurate each model is on the true labels, and how
well each ranking method (in-sample and out-of-sample) puts the faults first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from .atomic import read_csv, write_csv
from .predict import Predictor
from .vocab import OUT_OF_PLACE

FAULTS_TO_CLEAN = ("mislabeled", "out_of_place")


def scores(labels: list[str], predicted: list[str], classes: list[str]) -> dict:
    correct = np.array(labels) == np.array(predicted)
    p, r, f, support = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    return {
        "accuracy": float(correct.mean()) if len(correct) else float("nan"),
        "error_rate": float(1 - correct.mean()) if len(correct) else float("nan"),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
    }


def truth_by_stem(ground_truth_csv: Path) -> dict[str, dict]:
    """Ground-truth rows keyed by the 16-hex content hash that names every pipeline file."""
    return {row["sha256"][:16]: row for row in read_csv(ground_truth_csv) if row["sha256"]}


def cleaning_scores(before: list[dict], after: list[dict], truth: dict[str, dict]) -> dict:
    """How many injected faults in train/valid cleaning removed or fixed, and what else it removed."""
    kept = {r["path"]: r["label"] for r in after}
    out = {}
    faulty_total = fixed_total = 0
    for fault in FAULTS_TO_CLEAN:
        rows = [r for r in before if r["split"] != "test"
                and truth.get(Path(r["path"]).stem, {}).get("fault") == fault]
        fixed = sum(r["path"] not in kept or kept[r["path"]] == truth[Path(r["path"]).stem]["true_class"]
                    for r in rows)
        out[f"{fault}_in_data"] = len(rows)
        out[f"{fault}_removed"] = fixed / len(rows) if rows else float("nan")
        faulty_total += len(rows)
        fixed_total += fixed
    clean_rows = [r for r in before if r["split"] != "test"
                  and truth.get(Path(r["path"]).stem, {}).get("fault") in ("none", "duplicate")]
    out["faults_removed"] = fixed_total / faulty_total if faulty_total else float("nan")
    out["good_images_removed"] = sum(r["path"] not in kept for r in clean_rows)
    return out


def ranking_scores(rankings: list[dict], truth: dict[str, dict]) -> dict:
    """How well each ranking (interpret's rankings.csv) finds the injected faults in train/valid.

    N is the number of injected mislabeled plus out-of-place images. Per ranking:
    precision of its top N (either fault counts), recall of each fault kind in
    the top N, the share of mislabeled images in the top n_mislabeled of the
    mislabel ranking (review order once the images flagged out-of-place are set
    aside; there precision equals recall), the same at its operating point
    (every flagged image), and, for the out-of-place score alone, recall in its
    top n_out_of_place and at its threshold.
    """
    if not rankings:
        return {}
    fault = np.array([truth.get(Path(r["path"]).stem, {}).get("fault", "") for r in rankings])
    mis, oop = fault == "mislabeled", fault == "out_of_place"
    bad = mis | oop
    n = int(bad.sum())
    out: dict = {"n_mislabeled": int(mis.sum()), "n_out_of_place": int(oop.sum())}

    def share(hit: np.ndarray, of: np.ndarray) -> float:
        return float((hit & of).sum() / of.sum()) if of.sum() else float("nan")

    for name in sorted(k[:-len("_order")] for k in rankings[0] if k.endswith("_order")):
        order = np.array([int(r[f"{name}_order"]) for r in rankings])
        reason = np.array([r[f"{name}_reason"] for r in rankings])
        top, flagged = order < n, reason != ""
        aside = reason == OUT_OF_PLACE
        mislabel_rank = np.full(len(order), len(order))
        rest = np.flatnonzero(~aside)
        mislabel_rank[rest[np.argsort(order[rest], kind="stable")]] = np.arange(len(rest))
        source = "out_of_sample" if name.endswith("out_of_sample") else "in_sample"
        ood = np.array([float(r[f"ood_{source}"]) for r in rankings])
        top_ood = np.zeros(len(ood), dtype=bool)
        top_ood[np.argsort(-ood, kind="stable")[:int(oop.sum())]] = True
        out[name] = {
            "precision_at_n": share(bad, top),
            "mislabeled_precision_at_n_mislabeled": share(mis, mislabel_rank < int(mis.sum())),
            "mislabeled_recall_at_n": share(top, mis),
            "out_of_place_recall_at_n": share(top, oop),
            "flagged": int(flagged.sum()),
            "flagged_precision": share(bad, flagged),
            "flagged_mislabeled_recall": share(flagged, mis),
            "flagged_out_of_place_recall": share(flagged, oop),
            "ood_recall_at_n_out_of_place": share(top_ood, oop),
            "ood_flagged_out_of_place_recall": share(aside, oop),
        }
    return out


def evaluate(models: dict[str, Path], manifest_csv: Path, cleaned_csv: Path, out_dir: Path,
             batch_size: int, ground_truth_csv: Path | None = None, rankings_csv: Path | None = None) -> dict:
    test = [r for r in read_csv(cleaned_csv) if r["split"] == "test"]
    if not test:
        raise ValueError(f"{cleaned_csv}: no test images; raise split.test_pct")
    truth = truth_by_stem(ground_truth_csv) if ground_truth_csv and ground_truth_csv.exists() else None
    metrics: dict = {"test_images": len(test)}
    per_class, predictions = [], {}
    for name, model_dir in models.items():
        predictor = Predictor(model_dir)
        probs = predictor.predict_files([r["path"] for r in test], batch_size)
        predicted = [predictor.classes[i] for i in probs.argmax(axis=1)]
        predictions[name] = predicted
        m = scores([r["label"] for r in test], predicted, predictor.classes)
        metrics[name] = m
        per_class += [{"model": name, "class": c, **v} for c, v in m["per_class"].items()]
        if truth is not None:
            known = [(truth[Path(r["path"]).stem]["true_class"], pred) for r, pred in zip(test, predicted)
                     if truth.get(Path(r["path"]).stem, {}).get("true_class")]
            m["true_label_accuracy"] = float(np.mean([t == p for t, p in known])) if known else float("nan")
    if truth is not None:
        metrics["cleaning"] = cleaning_scores(read_csv(manifest_csv), read_csv(cleaned_csv), truth)
        if rankings_csv is not None and rankings_csv.exists():
            metrics["ranking"] = ranking_scores(read_csv(rankings_csv), truth)
    last = list(models)[-1]
    write_csv(out_dir / "confusion.csv", ({"actual": r["label"], "predicted": p}
                                          for r, p in zip(test, predictions[last])), ["actual", "predicted"])
    write_csv(out_dir / "per_class.csv", per_class, ["model", "class", "precision", "recall", "f1", "support"])
    return metrics
