"""Apply human decisions, then the automatic policy, to make the cleaned manifest.

The decisions file (git-tracked CSV: path, action, label; written by the review
page or by hand) wins over the policy. Actions: keep (never touched), delete
(does not belong), relabel (to `label`). The policy then acts on undecided
flagged train/valid candidates in review order: a likely_out_of_place image is
dropped when its out-of-place score reaches `min_score.out_of_place`, a
likely_mislabeled one when its method's score reaches `min_score.<method>`;
at most `max_fraction` of each class's train/valid images. It drops rather than
relabels: a model's guess is not a label. Raw and verified files are never deleted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from . import decisions as decisions_file
from .atomic import read_csv, write_csv
from .contact_sheet import write_sheets
from .params import MinScore
from .progress import log
from .vocab import MANIFEST_FIELDS, MISLABELED, OUT_OF_PLACE

REPORT_FIELDS = ["path", "label", "action", "new_label", "decided_by", "reason"]


def read_decisions(path: Path, classes: list[str]) -> dict[str, dict]:
    """Validated decisions by image path (bearid/decisions.py); a missing file means none yet."""
    rows = decisions_file.read(path, classes).rows
    return {p: {"action": r["action"], "label": r["label"]} for p, r in rows.items()}


def clean(manifest: list[dict], candidates: list[dict], decisions: dict[str, dict],
          min_score: MinScore, max_fraction: float) -> tuple[list[dict], list[dict]]:
    """Return (cleaned manifest rows, report rows)."""
    by_path = {r["path"]: r for r in manifest}
    for path in decisions.keys() - by_path.keys():
        log("clean", f"warning: decision for {path} which is not in the manifest; kept in the file")
    report, dropped, relabelled = [], set(), {}
    for path, d in decisions.items():
        if path not in by_path or d["action"] == "keep":
            continue
        row = by_path[path]
        if d["action"] == "delete":
            dropped.add(path)
            report.append({"path": path, "label": row["label"], "action": "delete", "new_label": "",
                           "decided_by": "human", "reason": "marked as not belonging"})
        elif d["label"] != row["label"]:
            relabelled[path] = d["label"]
            report.append({"path": path, "label": row["label"], "action": "relabel",
                           "new_label": d["label"], "decided_by": "human", "reason": "marked as mislabeled"})

    budget = class_budgets(manifest, max_fraction)
    for c in candidates:  # in review order: flagged first, most suspicious first
        path = c["path"]
        if path in decisions or path not in by_path or by_path[path]["split"] == "test":
            continue
        why = policy_reason(c, min_score)
        label = by_path[path]["label"]
        if why is None or budget.get(label, 0) <= 0:
            continue
        dropped.add(path)
        budget[label] -= 1
        report.append({"path": path, "label": label, "action": "delete", "new_label": "",
                       "decided_by": "policy", "reason": why})

    cleaned = [{**r, "label": relabelled.get(r["path"], r["label"])}
               for r in manifest if r["path"] not in dropped]
    return cleaned, report


def class_budgets(manifest: list[dict], max_fraction: float) -> dict[str, int]:
    """How many train/valid images of each class the policy may drop."""
    counts = Counter(r["label"] for r in manifest if r["split"] != "test")
    return {label: int(max_fraction * n) for label, n in counts.items()}


def policy_reason(c: dict, min_score: MinScore) -> str | None:
    """Why the policy drops this candidate, or None to leave it."""
    if c["reason"] == OUT_OF_PLACE:
        ood = float(c["ood_score"])
        if ood >= min_score.out_of_place:
            return f"{OUT_OF_PLACE}: out-of-place score {ood:.3f} >= {min_score.out_of_place:g}"
    elif c["reason"] == MISLABELED:
        score, threshold = float(c["score"]), getattr(min_score, c["method"], None)
        if threshold is None:
            raise ValueError(f"candidate {c['path']}: unknown ranking method {c['method']!r}")
        if score >= threshold:
            return (f"{MISLABELED}: {c['method']} score {score:.3f} >= {threshold:g} "
                    f"(model suggests {c['suggested']})")
    return None


def clean_files(manifest_csv: Path, candidates_csv: Path, decisions_csv: Path, classes: list[str],
                min_score: MinScore, max_fraction: float, out_dir: Path) -> list[dict]:
    manifest = read_csv(manifest_csv)
    decisions = read_decisions(decisions_csv, classes)
    cleaned, report = clean(manifest, read_csv(candidates_csv), decisions, min_score, max_fraction)
    write_csv(out_dir / "manifest.csv", cleaned, MANIFEST_FIELDS)
    write_csv(out_dir / "report.csv", report, REPORT_FIELDS)
    write_sheets(report, out_dir / "sheets")
    log("clean", f"{len(manifest)} images -> {len(cleaned)}: "
                 f"{sum(r['decided_by'] == 'human' for r in report)} human decisions, "
                 f"{sum(r['decided_by'] == 'policy' for r in report)} by policy")
    return report
