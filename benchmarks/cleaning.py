"""How well cleaning finds the demo's injected faults, per ranking method, and what it buys.

For each label-noise level (fetch.demo.mislabeled) and each replicate it runs
`dvc repro` in a fresh git+dvc copy of the working tree and reads
data/evaluate/metrics.json. `--colours varied` runs the demo world whose digits
come in varied colours (fetch.demo.colours), where colour no longer gives the
photo crops away; `--out-of-place` sets their share (fetch.demo.out_of_place).
`--preset real-photos` runs the demo with that preset's settings (its source
and classes aside), drawn at its image size. `--noise 0 --out-of-place 0` is
the clean world: nothing injected, so whatever the policy removes is a good
image lost. Replicate 0 is params.yaml as it is; replicate r
adds r to the demo, split and train seeds, so each replicate draws its own
noise, its own test split and its own weights. One test split holds ~80 images
of a true class, so one run moves in steps of 1.2 points and a single run cannot
show a 2-point gain: the summary gives the mean and spread over replicates.
A model's test accuracy also moves by several points with its training seed
alone, so `--train-seeds K` trains the models before and after cleaning with K
seeds each (the pipeline's own and train.seed + 100, + 200, ...: the train and
retrain stages' recipes on the same manifests) and compares their means.

- per ranking (top_losses / confident_learning, on in-sample or out-of-sample
  probabilities): precision of the top N (N = injected mislabeled + out-of-place
  train/valid images), recall of each fault kind in the top N, the same at the
  method's operating point (its flagged images), and out-of-place recall of
  the out-of-place score alone;
- the good images (right label) the out-of-place score flags: its false flags;
- what the automatic policy removed, good images as a count and a share, and
  the true-label test accuracy of the model before and after cleaning.

Ratios are against the anchor measured in the same run (the lesson's way:
top_losses on in-sample probabilities) and against the cleaning targets, which
are also printed beside the measures they name (ACCEPTANCE).

    python benchmarks/cleaning.py [--noise 0.08 0.2] [--replicates 3] [--colours grey|varied]
                                  [--out-of-place SHARE] [--keep]
    python benchmarks/cleaning.py --colours varied --noise 0 --out-of-place 0   # the clean world
    python benchmarks/cleaning.py --colours varied --noise 0.08 --preset real-photos   # the real-photo settings
    python benchmarks/cleaning.py --colours varied --noise 0.08 --train-seeds 4   # accuracy over 4 training seeds
    python benchmarks/cleaning.py --metrics data/evaluate/metrics.json   # print an existing run
    python -m benchmarks.cleaning --seed-run 144   # in a kept copy: one more training seed, before and after
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "top_losses_in_sample"
SEED_STEP = 100  # extra training seeds: train.seed + 100 j, clear of the replicates' shifts by 1
TARGETS = {"mislabeled_precision_at_n_mislabeled": 0.8, "mislabeled_recall_at_n": 0.8,
           "out_of_place_recall_at_n": 0.9}
METHOD = "confident_learning_out_of_sample"  # the default ranking, which the policy acts on
# The cleaning targets per world: measure -> (comparison, bound, what it names).
ACCEPTANCE = {
    "clean": {"good_images_removed_share": ("<=", 0.01, "policy removes <= 1% of images")},
    "faults": {  # set for the colour-varied world at 8% mislabeled + 3% out of place
        "mislabeled_precision_at_n_mislabeled": (">=", 0.8, "mislabeled in top n_mislabeled >= 0.8"),
        "out_of_place_recall_at_n": (">=", 0.9, "out-of-place recall at N >= 0.9"),
        "good_images_removed_share": ("<=", 0.02, "good images removed <= 2%"),
        "accuracy_gain": (">=", 0.0, "true-label accuracy after >= before"),
    },
}
COLUMNS = {  # metric: short header
    "precision_at_n": "P@N", "mislabeled_precision_at_n_mislabeled": "misP@Nmis", "mislabeled_recall_at_n": "misR@N", "out_of_place_recall_at_n": "oopR@N",
    "flagged": "flagged", "flagged_precision": "P(fl)", "flagged_mislabeled_recall": "misR(fl)",
    "flagged_out_of_place_recall": "oopR(fl)", "ood_recall_at_n_out_of_place": "ood oopR@n",
    "good_flagged_out_of_place": "good oop", "good_flagged_out_of_place_share": "good oop%",
}


def copy_project(dest: Path) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored), without pipeline outputs."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for f in files:
        src = ROOT / f
        if src.is_file() and f != "dvc.lock" and not f.startswith("data/"):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run_demo(work: Path, noise: float, replicate: int = 0, overrides: dict | None = None,
             name: str = "demo", train_seeds: int = 1) -> tuple[dict, float]:
    """`dvc repro` on the demo at this label noise and replicate, with other params set (dotted key: value),
    in work/<name>-noise-<noise>-replicate-<r>; the evaluate metrics and the wall time of `dvc repro`.
    With train_seeds > 1 the metrics gain `training_seeds`: the true-label test accuracies before and after
    cleaning per training seed, the pipeline's own first."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    repo = work / f"{name}-noise-{noise:g}-replicate-{replicate}"
    repo.mkdir(parents=True)
    copy_project(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["fetch"]["demo"]["mislabeled"] = noise
    for key, value in (overrides or {}).items():
        *path, leaf = key.split(".")
        section = params
        for part in path:
            section = section[part]
        section[leaf] = value
    for section in (params["fetch"]["demo"], params["split"], params["train"]):
        section["seed"] += replicate
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    start = time.perf_counter()
    subprocess.run(["dvc", "repro"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
    if train_seeds > 1:
        seed = params["train"]["seed"]
        runs = [{"seed": seed, **{m: metrics[m]["true_label_accuracy"] for m in ("before", "after")}}]
        for j in range(1, train_seeds):
            out = subprocess.run([sys.executable, "-m", "benchmarks.cleaning", "--seed-run", str(seed + SEED_STEP * j)],
                                 cwd=repo, env=env, check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.splitlines()[-1]))
        metrics["training_seeds"] = runs
    return metrics, seconds


def seed_run(seed: int) -> dict:
    """Inside a pipeline copy after `dvc repro` (`--seed-run`): the train stage's recipe on the manifest
    and the retrain stage's on the cleaned manifest, both at training seed `seed`, and their true-label
    test accuracies. Where the policy dropped nothing and the recipes are one, so are the models."""
    import dataclasses

    from bearid import params
    from bearid.atomic import read_csv
    from bearid.evaluate import evaluate
    from bearid.training import train_run

    manifest, cleaned, out = Path("data/manifest.csv"), Path("data/clean/manifest.csv"), Path(f"seeds/{seed}")
    train, retrain = (dataclasses.replace(params.load(stage), seed=seed) for stage in ("train", "retrain"))
    models = {"before": out / "before", "after": out / "after"}
    train_run(manifest, train, models["before"], "train")
    if retrain == train and read_csv(cleaned) == read_csv(manifest):
        models["after"] = models["before"]
    else:
        train_run(cleaned, retrain, models["after"], "retrain")
    m = evaluate(models, manifest, cleaned, out / "evaluate", params.load("evaluate").batch_size,
                 Path("data/web/ground_truth.csv"))
    return {"seed": seed, **{name: m[name]["true_label_accuracy"] for name in models}}


def accuracies(metrics: dict) -> tuple[float, float]:
    """True-label test accuracy before and after cleaning: the mean over the training seeds where
    there are several."""
    runs = metrics.get("training_seeds")
    if runs:
        return tuple(float(np.mean([r[m] for r in runs])) for m in ("before", "after"))
    nan = float("nan")
    return tuple(metrics.get(m, {}).get("true_label_accuracy", nan) for m in ("before", "after"))


def world(metrics: dict) -> str:
    """clean when no fault was injected into train/valid, else faults: which ACCEPTANCE targets apply."""
    ranking = metrics.get("ranking") or {}
    return "faults" if ranking.get("n_mislabeled") or ranking.get("n_out_of_place") else "clean"


def measures(metrics: dict) -> dict[str, float]:
    """The measures the acceptance targets name, from one run's metrics (nan where absent)."""
    nan = float("nan")
    method = (metrics.get("ranking") or {}).get(METHOD, {})
    before, after = accuracies(metrics)
    return {"mislabeled_precision_at_n_mislabeled": method.get("mislabeled_precision_at_n_mislabeled", nan),
            "out_of_place_recall_at_n": method.get("out_of_place_recall_at_n", nan),
            "good_images_removed_share": metrics.get("cleaning", {}).get("good_images_removed_share", nan),
            "accuracy_gain": after - before}


def verdict(value: float, comparison: str, bound: float) -> str:
    if value != value:  # nan
        return "n/a"
    return "met" if (value <= bound if comparison == "<=" else value >= bound) else "MISSED"


def report(metrics: dict, title: str) -> None:
    ranking = metrics.get("ranking") or {}
    if not ranking:
        print(f"{title}: no ranking metrics (not the demo?)")
        return
    print(f"\n{title}: {ranking['n_mislabeled']} mislabeled + {ranking['n_out_of_place']} out-of-place "
          f"train/valid images injected (N = their sum), {ranking.get('n_good', '?')} good ones")
    print("misP@Nmis: mislabeled share of the top n_mislabeled of the mislabel ranking (= their recall there); P: precision, misR/oopR: recall of mislabeled/out-of-place; @N: top N; (fl): flagged images; "
          "ood oopR@n: out-of-place score's top n_out_of_place; good oop(%): good images flagged "
          "likely_out_of_place (the out-of-place score's false flags) and their share of the good images")
    print(f"{'ranking':<34}" + "".join(f"{h:>11}" for h in COLUMNS.values()))
    for name in sorted(k for k, v in ranking.items() if isinstance(v, dict)):
        print(f"{name:<34}" + "".join(f"{ranking[name].get(c, float('nan')):>11.3g}" for c in COLUMNS))
    anchor = ranking.get(ANCHOR)
    if anchor and world(metrics) == "faults":
        print(f"\nratios to the anchor ({ANCHOR}) and to the targets:")
        for name in sorted(k for k, v in ranking.items() if isinstance(v, dict) and k != ANCHOR):
            parts = [f"{c} x{ranking[name][c] / anchor[c]:.2f} anchor, x{ranking[name][c] / t:.2f} target"
                     if anchor[c] else f"{c} {ranking[name][c]:.3g}" for c, t in TARGETS.items()]
            print(f"  {name}: " + "; ".join(parts))
    if "cleaning" in metrics:
        c = metrics["cleaning"]
        print(f"policy removed/fixed: mislabeled {c['mislabeled_removed']:.2f}, out-of-place "
              f"{c['out_of_place_removed']:.2f}, good images lost {c['good_images_removed']}"
              + (f" of {c['good_images']} ({c['good_images_removed_share']:.1%})" if "good_images" in c else ""))
    before, after = (metrics.get(m, {}).get("true_label_accuracy") for m in ("before", "after"))
    if before is not None and after is not None:
        print(f"true-label test accuracy: before cleaning {before:.4f}, after {after:.4f} "
              f"({100 * (after - before):+.1f} points; target +2 at 20% noise)")
    runs = metrics.get("training_seeds")
    if runs:
        gains = np.array([r["after"] - r["before"] for r in runs]) * 100
        print(f"over {len(runs)} training seeds (" + ", ".join(
            f"{r['seed']}: {r['before']:.4f} -> {r['after']:.4f}" for r in runs) + "):")
        before, after = accuracies(metrics)
        se = gains.std(ddof=1) / np.sqrt(len(gains))
        print(f"  mean before {before:.4f}, after {after:.4f} ({100 * (after - before):+.1f} points, "
              f"standard error {se:.1f}; the accuracy target compares these means)")
    kind = world(metrics)
    print(f"cleaning targets ({'clean world, nothing injected' if kind == 'clean' else 'set for the colour-varied world at 8% mislabeled + 3% out of place'}; {METHOD}):")
    for measure, value in measures(metrics).items():
        if measure in ACCEPTANCE[kind]:
            comparison, bound, text = ACCEPTANCE[kind][measure]
            print(f"  {measure:<38} {value:>8.3f}   target: {text:<40} {verdict(value, comparison, bound)}")


def summarize(runs: list[dict], title: str) -> None:
    """Mean and spread over replicates of what the cleaning targets name."""
    def line(name: str, values: list[float], fmt: str = ".3f") -> str:
        v = np.array(values, dtype=float)
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        return (f"  {name:<52} mean {v.mean():{fmt}}  sd {sd:.3f}  median {np.median(v):{fmt}}  "
                f"min {v.min():{fmt}}  max {v.max():{fmt}}"
                f"  ({', '.join(f'{x:{fmt}}' for x in v)})")

    method = METHOD
    print(f"\nsummary of the {title} over {len(runs)} replicate(s):")
    for metric in TARGETS if any(world(m) == "faults" for m in runs) else ():
        print(line(f"{method} {COLUMNS[metric]}", [m["ranking"][method][metric] for m in runs]))
    print(line(f"{method} good flagged oop",
               [m["ranking"][method].get("good_flagged_out_of_place", float("nan")) for m in runs], fmt=".0f"))
    print(line("good images removed by the policy", [m["cleaning"]["good_images_removed"] for m in runs], fmt=".0f"))
    print(line("good images removed, share", [m["cleaning"].get("good_images_removed_share", float("nan"))
                                              for m in runs]))
    before, after = zip(*(accuracies(m) for m in runs))
    seeds = "" if not runs[0].get("training_seeds") else f", mean of {len(runs[0]['training_seeds'])} training seeds"
    print(line(f"true-label test accuracy before cleaning{seeds}", before))
    print(line(f"true-label test accuracy after cleaning{seeds}", after))
    print(line("after - before, points (target +2 at 20% noise)",
               [100 * (a - b) for a, b in zip(after, before)], fmt="+.1f"))
    print("cleaning targets, replicates that meet each:")
    for kind in sorted({world(m) for m in runs}):
        of_kind = [measures(m) for m in runs if world(m) == kind]
        for measure, (comparison, bound, text) in ACCEPTANCE[kind].items():
            verdicts = [verdict(m[measure], comparison, bound) for m in of_kind]
            print(f"  {text:<40} {verdicts.count('met')} of {len(of_kind)} ({', '.join(verdicts)})")


def share(text: str) -> float:
    """A share the demo accepts (fetch.demo.mislabeled and out_of_place: 0 to 0.5)."""
    value = float(text)
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text}: a share from 0 to 0.5")
    return value


def setting(text: str) -> tuple[str, object]:
    """KEY=VALUE with a YAML value, as `dvc exp run -S` takes it."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. train.pretrained=true")
    return key, yaml.safe_load(value)


def preset_overrides(name: str) -> dict:
    """A preset's settings as dotted keys, less its source (the demo stays the source), with the demo
    drawn at the preset's image size: the configuration meant for real photos, on the demo's world."""
    from bearid.presets import PRESETS, dotted

    keys = {k: v for k, v in dotted(PRESETS[name]).items() if not k.startswith(("fetch.", "download."))}
    return {**keys, "fetch.demo.img_size": keys["verify.max_size"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise", type=share, nargs="+", default=[0.08, 0.2],
                        help="label-noise levels (fetch.demo.mislabeled); 0 injects no mislabeled images")
    parser.add_argument("--colours", choices=["grey", "varied"], default="grey",
                        help="the demo's digit colours (fetch.demo.colours): varied takes colour's clue away")
    parser.add_argument("--out-of-place", type=share, metavar="SHARE",
                        help="share of photo crops (fetch.demo.out_of_place; default: params.yaml's); 0 injects none")
    parser.add_argument("--preset", choices=["real-photos"],
                        help="run the demo with a preset's settings (bearid preset), its source and classes aside")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=setting,
                        help="another params.yaml value, e.g. train.pretrained=true (YAML value; repeatable)")
    parser.add_argument("--replicates", type=int, default=3, help="runs per noise level, seeds shifted by 0..R-1")
    parser.add_argument("--metrics", type=Path, help="print an existing evaluate metrics.json instead")
    parser.add_argument("--train-seeds", type=int, default=1, metavar="K",
                        help="training seeds per replicate for the accuracy comparison (the pipeline's own and "
                             "K-1 more): the models before and after cleaning trained with each, means compared")
    parser.add_argument("--keep", action="store_true", help="keep the project copies")
    parser.add_argument("--seed-run", type=int, metavar="SEED",
                        help="inside a kept pipeline copy, after dvc repro (python -m benchmarks.cleaning): train "
                             "before and after cleaning at this training seed, print their accuracies as JSON")
    args = parser.parse_args()
    if args.seed_run is not None:
        print(json.dumps(seed_run(args.seed_run)))
        return
    if args.train_seeds < 1:
        parser.error(f"--train-seeds {args.train_seeds}: at least 1")
    if args.metrics:
        report(json.loads(args.metrics.read_text()), str(args.metrics))
        return
    work = Path(tempfile.mkdtemp(prefix="bearid-cleaning-"))
    overrides = {"fetch.demo.colours": args.colours, **(preset_overrides(args.preset) if args.preset else {}),
                 **dict(args.set)}
    name = args.colours + (f"-{args.preset}" if args.preset else "")
    if args.out_of_place is not None:
        overrides["fetch.demo.out_of_place"] = args.out_of_place
        name += f"-oop-{args.out_of_place:g}"
    try:
        for noise in args.noise:
            runs = []
            oop = "" if args.out_of_place is None else f", {args.out_of_place:.0%} out of place"
            title = f"{args.colours} demo at {noise:.0%} label noise{oop}"
            for replicate in range(args.replicates):
                metrics, seconds = run_demo(work, noise, replicate, overrides, name, args.train_seeds)
                report(metrics, f"{title}, replicate {replicate} (dvc repro {seconds:.0f}s)")
                runs.append(metrics)
            summarize(runs, title)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
