"""Default demo pipeline from nothing, timed in a fresh clone of the committed project.

Prints the wall time of `dvc repro` from nothing and of a no-op `dvc repro`,
each as a ratio to its target (5 min, 5 s), and the retrained model's test
error against the true labels (target: under 5%).

    python benchmarks/pipeline.py [--keep]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"repro_s": 300.0, "noop_s": 5.0, "true_test_error": 0.05}


def timed(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bearid-bench-"))
    clone = work / "project"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    repro = timed(["dvc", "repro", "--force"], clone)
    noop = timed(["dvc", "repro"], clone)
    metrics = json.loads((clone / "data/evaluate/metrics.json").read_text())
    results = {
        "repro_s": repro,
        "noop_s": noop,
        "true_test_error": 1 - metrics["after"]["true_label_accuracy"],
    }
    print(f"{'measure':<18}{'value':>10}{'target':>10}{'ratio':>8}")
    for key, value in results.items():
        print(f"{key:<18}{value:>10.4g}{TARGETS[key]:>10.4g}{value / TARGETS[key]:>8.2f}")
    print(f"before cleaning: true test error {1 - metrics['before']['true_label_accuracy']:.4f}; "
          f"faults removed by cleaning {metrics['cleaning']['faults_removed']:.2f}")
    if "--keep" in sys.argv:
        print(f"kept {clone}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
