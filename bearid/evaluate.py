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
GOOD = ("none", "duplicate")  # faults of the images whose label is right


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
    """How many injected faults in train/valid cleaning removed or fixed, and what else it removed.

    A good image is one with the right label: no fault, or an exact duplicate of such an image.
    """
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
                  and truth.get(Path(r["path"]).stem, {}).get("fault") in GOOD]
    out["faults_removed"] = fixed_total / faulty_total if faulty_total else float("nan")
    out["good_images"] = len(clean_rows)
    out["good_images_removed"] = sum(r["path"] not in kept for r in clean_rows)
    out["good_images_removed_share"] = (out["good_images_removed"] / len(clean_rows) if clean_rows
                                        else float("nan"))
    return out


def fraction(hit: np.ndarray, among: np.ndarray) -> float:
    """Share of the `among` images that are also `hit` (nan when there are none)."""
    return float((hit & among).sum() / among.sum()) if among.sum() else float("nan")


def first(order: np.ndarray, k: int) -> np.ndarray:
    """Mask of the k images that come first in a ranking (`order` 0 is first)."""
    mask = np.zeros(len(order), dtype=bool)
    mask[np.argsort(order, kind="stable")[:k]] = True
    return mask


def ranking_scores(rankings: list[dict], truth: dict[str, dict]) -> dict:
    """How well each ranking in interpret's rankings.csv finds the injected faults in train/valid."""
    if not rankings:
        return {}
    fault = np.array([truth.get(Path(r["path"]).stem, {}).get("fault", "") for r in rankings])
    mislabeled, out_of_place, good = fault == "mislabeled", fault == "out_of_place", np.isin(fault, GOOD)
    out: dict = {"n_mislabeled": int(mislabeled.sum()), "n_out_of_place": int(out_of_place.sum()),
                 "n_good": int(good.sum())}
    for name in sorted(k.removesuffix("_order") for k in rankings[0] if k.endswith("_order")):
        out[name] = score_ranking(rankings, name, mislabeled, out_of_place, good)
    return out


def score_ranking(rankings: list[dict], name: str, mislabeled: np.ndarray, out_of_place: np.ndarray,
                  good: np.ndarray) -> dict:
    """Scores of ranking `name`, N being the number of mislabeled plus out-of-place images.

    The review order's top N, with either fault counting; the mislabel ranking
    (the review order once the images flagged out of place are set aside) in its
    top n_mislabeled, where precision equals recall; every flagged image (the
    operating point); and the out-of-place score alone, in its top n_out_of_place,
    at its threshold, and in the good images it flags there (its false flags:
    an out-of-place score that reads colour flags the colourful members of a class).
    """
    faulty = mislabeled | out_of_place
    source = "out_of_sample" if name.endswith("out_of_sample") else "in_sample"
    order = np.array([int(r[f"{name}_order"]) for r in rankings])
    reason = np.array([r[f"{name}_reason"] for r in rankings])
    ood = np.array([float(r[f"ood_{source}"]) for r in rankings])
    flagged, set_aside = reason != "", reason == OUT_OF_PLACE
    top_n = order < faulty.sum()
    mislabel_order = np.where(set_aside, len(order), order)  # set-aside images move behind the rest
    top_mislabel = first(mislabel_order, int(mislabeled.sum())) & ~set_aside
    top_ood = first(-ood, int(out_of_place.sum()))
    return {
        "precision_at_n": fraction(faulty, among=top_n),
        "mislabeled_precision_at_n_mislabeled": fraction(mislabeled, among=top_mislabel),
        "mislabeled_recall_at_n": fraction(top_n, among=mislabeled),
        "out_of_place_recall_at_n": fraction(top_n, among=out_of_place),
        "flagged": int(flagged.sum()),
        "flagged_precision": fraction(faulty, among=flagged),
        "flagged_mislabeled_recall": fraction(flagged, among=mislabeled),
        "flagged_out_of_place_recall": fraction(flagged, among=out_of_place),
        "ood_recall_at_n_out_of_place": fraction(top_ood, among=out_of_place),
        "ood_flagged_out_of_place_recall": fraction(set_aside, among=out_of_place),
        "good_flagged_out_of_place": int((set_aside & good).sum()),
        "good_flagged_out_of_place_share": fraction(set_aside, among=good),
    }


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
