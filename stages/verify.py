"""verify: decode every file once; keep RGB images of bounded size, report the rest and the duplicates."""

from collections import Counter
from pathlib import Path

from bearid import params, runner
from bearid.progress import log
from bearid.verify import verify_all


def main() -> None:
    p = params.load("verify")
    results = verify_all(Path("data/raw"), Path("data/images"), Path("data/verify.csv"), p,
                         metrics=Path("data/verify_metrics.json"))
    log("verify", ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.status for r in results).items())))
    for reason, n in sorted(Counter(r.reason for r in results if r.status != "ok").items()):
        log("verify", f"rejected {n}: {reason}")
    groups = {r.group for r in results if r.group}
    if groups:
        log("verify", f"{sum(bool(r.group) for r in results)} images in {len(groups)} near-duplicate groups")


if __name__ == "__main__":
    runner.run("verify", main)
