"""Apply human decisions, then the automatic policy, to make the cleaned manifest.

The decisions file (git-tracked CSV: path, action, label) wins over the policy.
Actions: keep (never touched), delete (does not belong), relabel (to `label`).
The policy drops undecided train/valid candidates that the model gives to
another class with probability >= min_prob, highest loss first, at most
max_fraction of the train/valid images. Raw and verified files are never deleted.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import read_csv, write_csv
from .progress import log
from .split import MANIFEST_FIELDS

ACTIONS = ("keep", "delete", "relabel")
REPORT_FIELDS = ["path", "label", "action", "new_label", "decided_by", "reason"]


class DecisionsError(ValueError):
    """A bad line in the decisions file; the message names the line."""


def read_decisions(path: Path, classes: list[str]) -> dict[str, dict]:
    """Validated decisions by image path; a missing file means no decisions yet."""
    if not path.exists():
        return {}
    decisions = {}
    for n, row in enumerate(read_csv(path), start=2):
        where = f"{path}:{n}"
        action, label = (row.get("action") or "").strip(), (row.get("label") or "").strip()
        if not row.get("path"):
            raise DecisionsError(f"{where}: empty path")
        if action not in ACTIONS:
            raise DecisionsError(f"{where}: unknown action {action!r}; one of {list(ACTIONS)}")
        if action == "relabel" and label not in classes:
            raise DecisionsError(f"{where}: relabel to unknown class {label!r}; one of {classes}")
        decisions[row["path"]] = {"action": action, "label": label}
    return decisions


def clean(manifest: list[dict], candidates: list[dict], decisions: dict[str, dict],
          min_prob: float, max_fraction: float) -> tuple[list[dict], list[dict]]:
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

    budget = int(max_fraction * sum(r["split"] != "test" for r in manifest))
    for c in candidates:  # ranked by loss, highest first
        if budget <= 0:
            break
        path = c["path"]
        if path in decisions or path not in by_path or by_path[path]["split"] == "test":
            continue
        if c["predicted"] != c["label"] and float(c["probability"]) >= min_prob:
            dropped.add(path)
            budget -= 1
            report.append({"path": path, "label": c["label"], "action": "delete", "new_label": "",
                           "decided_by": "policy",
                           "reason": f"model says {c['predicted']} with p={float(c['probability']):.3f} "
                                     f"(loss {float(c['loss']):.2f})"})

    cleaned = [{**r, "label": relabelled.get(r["path"], r["label"])}
               for r in manifest if r["path"] not in dropped]
    return cleaned, report


def clean_files(manifest_csv: Path, candidates_csv: Path, decisions_csv: Path, classes: list[str],
                min_prob: float, max_fraction: float, out_dir: Path) -> list[dict]:
    manifest = read_csv(manifest_csv)
    decisions = read_decisions(decisions_csv, classes)
    cleaned, report = clean(manifest, read_csv(candidates_csv), decisions, min_prob, max_fraction)
    write_csv(out_dir / "manifest.csv", cleaned, MANIFEST_FIELDS)
    write_csv(out_dir / "report.csv", report, REPORT_FIELDS)
    log("clean", f"{len(manifest)} images -> {len(cleaned)}: "
                 f"{sum(r['decided_by'] == 'human' for r in report)} human decisions, "
                 f"{sum(r['decided_by'] == 'policy' for r in report)} by policy")
    return report
