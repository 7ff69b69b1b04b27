"""Time the quick test tier (`make test-quick`: not browser, not slow) as a developer runs it.

Prints its wall time against the 3-minute target, its CPU time (user + system of pytest and its
children: steadier than wall time when others share the cores), and an anchor measured in the same run (a fixed torch import plus matrix products in a
fresh interpreter), so that timings from a busy machine can be compared.

    python benchmarks/test_quick.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 180.0
ANCHOR = "import torch; a = torch.randn(512, 512); [a @ a for _ in range(200)]"


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the children, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def main() -> None:
    anchor_s, _, _ = timed([sys.executable, "-c", ANCHOR])
    wall, cpu, proc = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-m", "not browser and not slow"])
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:])
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"quick tier: {wall:.0f} s wall ({wall / TARGET_S:.2f} of the {TARGET_S:.0f} s target), "
          f"{cpu:.0f} s CPU (user + system of pytest and its children)")
    print(f"anchor (torch import + 200 matmuls 512x512): {anchor_s:.1f} s; quick tier = {wall / anchor_s:.0f}x anchor")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
