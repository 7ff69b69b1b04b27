"""DVC on a large image folder: 10,000 small PNGs tracked as one directory output, in a scratch repo.

Times `dvc add`, `dvc status`, a no-op `dvc repro` of a stage that depends on the folder,
`dvc push` to a local-directory remote and `dvc pull` into a fresh `git clone`; then the same
images packed into tar shards (one DVC directory output of a few large files), to show how much
of the cost is per file. Every time is also printed as a ratio to an anchor measured in the same
run: a plain `cp -r` of the folder (for shards: of the shard folder); `dvc --version` shows the
fixed start-up cost that every dvc command pays. Targets (issue 7): no-op
`dvc repro` and `dvc status` under 5 s each.

    python benchmarks/dvc_scale.py [--images 10000] [--shards 10] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image

TARGET_S = {"dvc status": 5.0, "no-op dvc repro": 5.0}
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def sh(cmd: list[str], cwd: Path) -> float:
    """Run a command, return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def make_images(folder: Path, n: int, classes=("three", "five", "eight")) -> int:
    """n distinct 32x32 RGB PNGs in one sub-folder per class, like data/images; returns total bytes."""
    rng = random.Random(0)
    for i in range(n):
        cls = classes[i % len(classes)]
        (folder / cls).mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGB", (32, 32), rng.randbytes(32 * 32 * 3)).save(folder / cls / f"{i:05d}.png")
    return sum(p.stat().st_size for p in folder.rglob("*.png"))


def pack(folder: Path, shards_dir: Path, n_shards: int) -> None:
    """The same files in n_shards uncompressed tar files (PNGs do not compress further)."""
    files = sorted(p for p in folder.rglob("*.png"))
    shards_dir.mkdir(parents=True)
    for k in range(n_shards):
        with tarfile.open(shards_dir / f"shard-{k:03d}.tar", "w") as tar:
            for p in files[k::n_shards]:
                tar.add(p, arcname=str(p.relative_to(folder)))


def measure(work: Path, layout: str, make) -> dict[str, float]:
    """A git+dvc repo whose data/<layout> folder is a stage's dependency and a DVC output."""
    repo, store, clone = work / f"{layout}-repo", work / f"{layout}-store", work / f"{layout}-clone"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["dvc", "init", "-q"], repo)
    make(repo / "data" / layout)
    anchor = sh(["cp", "-r", f"data/{layout}", str(work / f"{layout}-cp")], repo)
    t = {"cp -r (anchor)": anchor, "dvc --version (startup)": sh(["dvc", "--version"], repo),
         "dvc add": sh(["dvc", "add", "-q", f"data/{layout}"], repo)}
    (repo / "dvc.yaml").write_text(
        f"stages:\n  count:\n    cmd: python -c \"import pathlib; print(sum(1 for _ in "
        f"pathlib.Path('data/{layout}').rglob('*')), file=open('count.txt', 'w'))\"\n"
        f"    deps: [data/{layout}]\n    outs: [count.txt]\n")
    sh(["dvc", "repro", "-q"], repo)
    sh(["dvc", "remote", "add", "-q", "-d", "store", str(store)], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "data"], repo)
    t["dvc status"] = sh(["dvc", "status", "-q"], repo)
    t["no-op dvc repro"] = sh(["dvc", "repro", "-q"], repo)
    t["dvc push"] = sh(["dvc", "push", "-q"], repo)
    sh(["git", "clone", "-q", str(repo), str(clone)], work)
    t["dvc pull (fresh clone)"] = sh(["dvc", "pull", "-q"], clone)
    t["dvc status (clone)"] = sh(["dvc", "status", "-q"], clone)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bearid-dvc-scale-"))
    source = work / "source"
    size = make_images(source, args.images)
    print(f"{args.images} PNGs, {size / 1e6:.1f} MB, in {work}; {os.cpu_count()} CPUs")

    results = {
        f"{args.images} files": measure(work, "images", lambda d: shutil.copytree(source, d)),
        f"{args.shards} shards": measure(work, "shards", lambda d: pack(source, d, args.shards)),
    }
    names = list(next(iter(results.values())))
    cols = list(results)
    print(f"\n{'':<24}" + "".join(f"{c:>16}{'x anchor':>10}" for c in cols) + f"{'target':>8}")
    for name in names:
        row = f"{name:<24}"
        for col in cols:
            value, anchor = results[col][name], results[col]["cp -r (anchor)"]
            row += f"{value:>15.2f}s{value / anchor:>10.1f}"
        print(row + (f"{TARGET_S[name]:>7.0f}s" if name in TARGET_S else ""))
    files, shards = results[cols[0]], results[cols[1]]
    per_file_ms = {k: 1000 * files[k] / args.images for k in ("dvc push", "dvc pull (fresh clone)")}
    print(f"\nper file: push {per_file_ms['dvc push']:.2f} ms, pull {per_file_ms['dvc pull (fresh clone)']:.2f} ms; "
          f"shards vs files: push {shards['dvc push'] / files['dvc push']:.2f}x, "
          f"pull {shards['dvc pull (fresh clone)'] / files['dvc pull (fresh clone)']:.2f}x, "
          f"status {shards['dvc status'] / files['dvc status']:.2f}x")
    for name, target in TARGET_S.items():
        print(f"{name}: {files[name]:.2f} s on {args.images} files = {files[name] / target:.2f} of the {target:.0f} s target")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
