"""Default `bearid sgd-demo` run, timed as a user runs it: a fresh interpreter, imports included.

Prints the median wall time of `python -m bearid.sgd` with default flags against its
target (10 s on a 2-core CPU), its CPU time (user + system: what the wall time would
be on an idle machine, and stable when others share the cores), and the fitted
coefficients' largest error against the truth (target: under 0.1).

    python benchmarks/sgd.py [--repeat N]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"default_run_s": 10.0, "default_run_cpu_s": 10.0, "coef_error": 0.1}


def main() -> None:
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    work = Path(tempfile.mkdtemp(prefix="bearid-sgd-bench-"))
    times, cpu = [], []
    try:
        for _ in range(repeat):
            start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-m", "bearid.sgd", "--out", str(work)], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
            now = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)
        result = json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work)
    results = {"default_run_s": statistics.median(times), "default_run_cpu_s": statistics.median(cpu),
               "coef_error": result["coef_error"]}
    print(f"{'measure':<18}{'value':>10}{'target':>10}{'ratio':>8}")
    for key, value in results.items():
        print(f"{key:<18}{value:>10.4g}{TARGETS[key]:>10.4g}{value / TARGETS[key]:>8.2f}")
    print(f"runs: {', '.join(f'{t:.2f}' for t in times)} s; verdict {result['diagnosis']['verdict']}, "
          f"{result['steps']} steps, {result['frames']} GIF frames; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
