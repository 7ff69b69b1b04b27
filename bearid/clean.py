"""Apply human decisions, then the automatic policy, to make the cleaned manifest.

The decisions file (git-tracked CSV: path, action, label; written by the review
page or by hand) wins over the policy. Actions: keep (never touched), delete
(does not belong), relabel (to `label`).

The policy is built to do no harm on data that is already clean. It acts only
on undecided flagged train/valid candidates whose score reaches
`min_score.<method>` (out of place: `min_score.out_of_place`) and whose label
the out-of-sample models contradict (p(label) at most noise.json's threshold),
most contradicted first, and it drops at most the evident faults of
noise.json (see `noise`) less those the decisions already fixed: on clean data
that is none. It drops rather than relabels: a model's guess is not a label.
Removing more than the evident faults, by decisions or by `max_removed`, needs
`beyond_estimate: true`. Raw and verified files are never deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import decisions as decisions_file
from .atomic import read_csv, write_csv
from .contact_sheet import write_sheets
from .noise import NoiseEstimate
from .params import CleanParams, MinScore, ParamsError
from .progress import log
from .vocab import MANIFEST_FIELDS, MISLABELED, OUT_OF_PLACE

REPORT_FIELDS = ["path", "label", "action", "new_label", "decided_by", "reason"]


def read_decisions(path: Path, classes: list[str]) -> dict[str, dict]:
    """Validated decisions by image path (bearid/decisions.py); a missing file means none yet."""
    rows = decisions_file.read(path, classes).rows
    return {p: {"action": r["action"], "label": r["label"]} for p, r in rows.items()}


def human_report(manifest: list[dict], decisions: dict[str, dict]) -> list[dict]:
    """Report rows of the decisions that change something."""
    by_path = {r["path"]: r for r in manifest}
    for path in decisions.keys() - by_path.keys():
        log("clean", f"warning: decision for {path} which is not in the manifest; kept in the file")
    report = []
    for path, d in decisions.items():
        if path not in by_path or d["action"] == "keep":
            continue
        label = by_path[path]["label"]
        if d["action"] == "delete":
            report.append({"path": path, "label": label, "action": "delete", "new_label": "",
                           "decided_by": "human", "reason": "marked as not belonging"})
        elif d["label"] != label:
            report.append({"path": path, "label": label, "action": "relabel", "new_label": d["label"],
                           "decided_by": "human", "reason": "marked as mislabeled"})
    return report


def clean(manifest: list[dict], candidates: list[dict], decisions: dict[str, dict], policy: CleanParams,
          noise: NoiseEstimate) -> tuple[list[dict], list[dict]]:
    """Return (cleaned manifest rows, report rows)."""
    report = human_report(manifest, decisions)
    deleted = sum(r["action"] == "delete" for r in report)
    if deleted > noise.faults and not policy.beyond_estimate:
        raise ParamsError(f"the decisions delete {deleted} images, more than the {noise.faults} evident faults "
                          f"of data/interpret/noise.json ({noise.below} labels at p <= {noise.threshold:g} where "
                          f"clean data would show {noise.expected:.1f}); set clean.beyond_estimate: true to apply them")
    report += policy_report(manifest, candidates, decisions, policy, noise, fixed=len(report))
    dropped = {r["path"] for r in report if r["action"] == "delete"}
    relabelled = {r["path"]: r["new_label"] for r in report if r["action"] == "relabel"}
    cleaned = [{**r, "label": relabelled.get(r["path"], r["label"])}
               for r in manifest if r["path"] not in dropped]
    return cleaned, report


def policy_report(manifest: list[dict], candidates: list[dict], decisions: dict[str, dict], policy: CleanParams,
                  noise: NoiseEstimate, fixed: int) -> list[dict]:
    """What the policy drops: the most contradicted evidence first, no more than the faults left."""
    split = {r["path"]: r["split"] for r in manifest}
    evident = []
    for c in candidates:
        if c["path"] in decisions or split.get(c["path"], "test") == "test":
            continue
        why = policy_reason(c, policy.min_score)
        if why is not None and float(c["given_prob"]) <= noise.threshold:
            evident.append((float(c["given_prob"]), len(evident), c, why))
    evident.sort(key=lambda e: e[:2])
    left = max(0, noise.faults - fixed)
    if policy.max_removed == "estimate":
        cap = left
    else:
        cap = policy.max_removed
        if min(cap, len(evident)) > left and not policy.beyond_estimate:
            raise ParamsError(f"clean.max_removed: {cap} would let the policy drop {min(cap, len(evident))} "
                              f"images, more than the {left} evident faults left (data/interpret/noise.json: "
                              f"{noise.faults}, less {fixed} decided); set clean.beyond_estimate: true to allow it")
    return [{"path": c["path"], "label": c["label"], "action": "delete", "new_label": "",
             "decided_by": "policy", "reason": f"{why}; p(label) {p:.3g}"} for p, _, c, why in evident[:cap]]


def policy_reason(c: dict, min_score: MinScore) -> str | None:
    """Why the policy would drop this candidate, or None to leave it."""
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


def clean_files(manifest_csv: Path, candidates_csv: Path, noise_json: Path, classes: list[str], p: CleanParams,
                out_dir: Path) -> list[dict]:
    manifest = read_csv(manifest_csv)
    decisions = read_decisions(Path(p.decisions), classes)
    if not noise_json.is_file():
        raise FileNotFoundError(f"{noise_json} is missing: rerun the interpret stage (dvc repro interpret)")
    noise = NoiseEstimate(**json.loads(noise_json.read_text()))
    cleaned, report = clean(manifest, read_csv(candidates_csv), decisions, p, noise)
    write_csv(out_dir / "manifest.csv", cleaned, MANIFEST_FIELDS)
    write_csv(out_dir / "report.csv", report, REPORT_FIELDS)
    write_sheets(report, out_dir / "sheets")
    log("clean", f"{len(manifest)} images -> {len(cleaned)}: "
                 f"{sum(r['decided_by'] == 'human' for r in report)} human decisions, "
                 f"{sum(r['decided_by'] == 'policy' for r in report)} by policy "
                 f"(evident faults: {noise.faults})")
    return report
