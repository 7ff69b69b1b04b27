"""evaluate: test metrics of both models (and, on the demo, against the true labels)."""

from pathlib import Path

from bearid import params, runner
from bearid.atomic import write_json
from bearid.demo import GROUND_TRUTH
from bearid.evaluate import evaluate
from bearid.progress import log


def main() -> None:
    p = params.load("evaluate")
    m = evaluate({"before": Path("data/train"), "after": Path("data/retrain")}, Path("data/manifest.csv"),
                 Path("data/clean/manifest.csv"), Path("data/evaluate"), p.batch_size,
                 ground_truth_csv=Path("data/web") / GROUND_TRUTH,
                 rankings_csv=Path("data/interpret/rankings.csv"))
    write_json("data/evaluate/metrics.json", m)
    log("evaluate", f"test error_rate before cleaning {m['before']['error_rate']:.4f}, "
                    f"after {m['after']['error_rate']:.4f} ({m['test_images']} images)")
    if "cleaning" in m:
        log("evaluate", f"demo: cleaning removed {m['cleaning']['faults_removed']:.0%} of injected faults; "
                        f"true-label accuracy {m['before']['true_label_accuracy']:.4f} -> "
                        f"{m['after']['true_label_accuracy']:.4f}")
    for name, r in m.get("ranking", {}).items():
        if isinstance(r, dict):
            log("evaluate", f"demo: {name}: precision@N {r['precision_at_n']:.2f}, recall@N mislabeled "
                            f"{r['mislabeled_recall_at_n']:.2f}, out-of-place {r['out_of_place_recall_at_n']:.2f}")


if __name__ == "__main__":
    runner.run("evaluate", main)
