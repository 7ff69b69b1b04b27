"""Image acquisition, ours against fastai's, on the same local "web" (no internet).

A search's results come from many hosts, some of them slow or dead. So this
serves N real JPEGs (varied sizes up to 1500 px, seeded) from `--hosts` HTTP
servers on 127.0.0.1, 127.0.0.2, ... (all loopback on Linux), in a separate
process, each response delayed by `--latency`. The timed list is the N images
plus a few bad URLs, shuffled in among them as a search returns them:

- `--trickle` URLs whose body (one of the images: bounded, since fastai has no
  size cap) arrives in 100 pieces spread over `--slow-s` seconds;
- `--dead` URLs whose server accepts the connection and then says nothing for
  `--slow-s` seconds before hanging up.

Then it times, interleaving fastai and ours and repeating `--repeat` times
(medians; fresh folders each time):

1. download of that list: fastai's `download_images` (its defaults: 8 threads,
   4 s timeout) against our `download_all` (params.yaml's download values);
2. the same, images only (no bad URLs): plain throughput;
3. a rerun of the list into the same folders: requests sent, files kept;
4. fastai's `verify_images` followed by `resize_images(max_size=500)` (the
   lesson's `verify_images(..., delete=True, max_size=500)`) against our
   `verify_all(max_size=500)` on the same downloaded files, both with
   `--workers` processes.

images/s counts the N good images over the wall time of the whole list; the
ratio is ours / fastai (above 1: ours is faster). Load averages are printed,
since on a shared machine they move the numbers.

    python benchmarks/acquisition.py [--n 300] [--hosts 8] [--latency 0.05] [--trickle 2] [--dead 2]
                                     [--slow-s 60] [--repeat 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
from bearid.download import download_all  # noqa: E402
from bearid import params  # noqa: E402
from bearid.verify import verify_all  # noqa: E402


def make_images(n: int, seed: int = 0) -> list[bytes]:
    """Smooth random pictures with some grain: JPEGs of ~10-700 KB like web photos, 300-1500 px."""
    import io
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = int(rng.integers(300, 1501))
        h = int(w * rng.uniform(0.6, 1.0))
        base = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        grain = rng.normal(0, rng.uniform(2, 10), (h, w, 1))
        pixels = (np.asarray(base, dtype=np.float32) + grain).clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=int(rng.integers(70, 90)))
        out.append(buf.getvalue())
    return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, images: list[bytes], latency: float, slow_s: float, counter):
        super().__init__((host, 0), Handler)
        self.images, self.latency, self.slow_s, self.counter = images, latency, slow_s, counter

    def handle_error(self, request, client_address) -> None:
        pass  # clients that give up on a slow URL are the point


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.counter.get_lock():
            self.server.counter.value += 1
        time.sleep(self.server.latency)
        path = self.path.partition("?")[0]
        kind, _, name = path.strip("/").partition("/")
        index = int(name.split(".")[0]) if name.split(".")[0].isdigit() else -1
        if not 0 <= index < len(self.server.images):
            self.send_error(404)
        elif kind == "img":
            self.send(self.server.images[index])
        elif kind == "slow":
            self.send(self.server.images[index], trickle=True)
        elif kind == "dead":
            self.server.socket.settimeout(None)
            time.sleep(self.server.slow_s)
            self.close_connection = True
        else:
            self.send_error(404)

    def send(self, body: bytes, trickle: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not trickle:
            self.wfile.write(body)
            return
        step = -(-len(body) // 100)
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(self.server.slow_s / 100)
        except OSError:
            pass


def serve(hosts: int, images: list[bytes], latency: float, slow_s: float, counter, ports, ready) -> None:
    """The "web": one server per loopback address, in this (separate) process."""
    servers = [Server(f"127.0.0.{i + 1}", images, latency, slow_s, counter) for i in range(hosts)]
    for i, s in enumerate(servers):
        ports[i] = s.server_address[1]
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ready.set()
    threading.Event().wait()


def files_in(folder: Path) -> int:
    return sum(1 for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))


def main() -> None:
    """Options, then each measurement in the order the table prints it.

    Kept as one straight script on purpose: each block times one side against its anchor
    in the same run, and reading them top to bottom is reading the table.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="good images in the list")
    ap.add_argument("--hosts", type=int, default=8, help="loopback addresses serving them")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added to every response")
    ap.add_argument("--trickle", type=int, default=2, help="URLs whose body trickles over --slow-s seconds")
    ap.add_argument("--dead", type=int, default=2, help="URLs that stay silent for --slow-s seconds")
    ap.add_argument("--slow-s", type=float, default=60.0, help="seconds a trickling / dead URL takes")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (medians reported)")
    ap.add_argument("--workers", type=int, default=2, help="processes for both verifiers")
    ap.add_argument("--skip", choices=["download", "verify"], help="leave one part out")
    args = ap.parse_args()
    for var in ("NO_PROXY", "no_proxy"):
        os.environ[var] = ",".join(f"127.0.0.{i + 1}" for i in range(args.hosts))
    warnings.filterwarnings("ignore")

    images = make_images(args.n)
    ctx = mp.get_context("fork")  # before fastai's import: the server process stays small
    counter, ports, ready = ctx.Value("q", 0), ctx.Array("i", args.hosts), ctx.Event()
    web = ctx.Process(target=serve, args=(args.hosts, images, args.latency, args.slow_s, counter, ports, ready),
                      daemon=True)
    web.start()
    ready.wait(30)
    from fastai.vision.all import defaults, download_images, get_image_files, resize_images, verify_images

    defaults.cpus = args.workers
    base = [f"http://127.0.0.{i + 1}:{ports[i]}" for i in range(args.hosts)]
    good = [f"{base[i % args.hosts]}/img/{i}.jpg" for i in range(args.n)]
    bad = [f"{base[i % args.hosts]}/slow/{i}.jpg" for i in range(args.trickle)] + \
          [f"{base[(i + 1) % args.hosts]}/dead/{i}.jpg" for i in range(args.dead)]
    mixed = good + bad
    random.Random(0).shuffle(mixed)  # bad URLs anywhere in the list, as a search returns them
    sizes = sorted(len(b) for b in images)
    p = params.load("download", PARAMS)  # the project's values
    vp0 = params.load("verify", PARAMS)
    print(f"{args.n} JPEGs, {sizes[0] // 1000}-{sizes[-1] // 1000} KB (median {sizes[len(sizes) // 2] // 1000} KB), "
          f"from {args.hosts} hosts with {args.latency * 1000:.0f} ms latency per request; plus {args.trickle} "
          f"trickling and {args.dead} dead URLs ({args.slow_s:g} s each); {os.cpu_count()} CPUs")
    print(f"fastai download_images: 8 threads, timeout 4 s | ours: workers {p.workers}, per_host {p.per_host}, "
          f"read_timeout {p.read_timeout:g} s, deadline {p.deadline:g} s")
    print(f"verify: fastai verify_images + resize_images (bilinear) | ours: resample {vp0.resample}, "
          f"{args.workers} processes each")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="bearid-acquisition-"))
    rows = []

    def compare(name: str, n: int, fastai_run, ours_run) -> None:
        theirs, ours = [], []
        for i in range(args.repeat):
            for side, fn in (("fastai", fastai_run), ("ours", ours_run)):
                with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                    t0 = time.perf_counter()  # both sides' progress output silenced alike
                    got = fn(work / f"{name}-{side}-{i}")
                (theirs if side == "fastai" else ours).append(time.perf_counter() - t0)
                print(f"  {name:<10} {side:<6} run {i + 1}: {(theirs if side == 'fastai' else ours)[-1]:7.2f} s, "
                      f"{got} files   (load {os.getloadavg()[0]:.2f})", flush=True)
        rows.append((name, n, statistics.median(theirs), statistics.median(ours),
                     statistics.median(t / o for t, o in zip(theirs, ours))))

    def fastai_dl(urls):
        def run(dest: Path) -> int:
            download_images(dest, urls=urls)
            return files_in(dest)
        return run

    def ours_dl(urls):
        def run(dest: Path) -> int:
            download_all({"c": urls}, dest / "raw", dest / "report.csv", p)
            return files_in(dest / "raw")
        return run

    try:
        if args.skip != "download":
            compare("list", args.n, fastai_dl(mixed), ours_dl(mixed))
            compare("images", args.n, fastai_dl(good), ours_dl(good))
            before = counter.value
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                download_images(work / "images-fastai-0", urls=good)
                fa_requests, before = counter.value - before, counter.value
                download_all({"c": good}, work / "images-ours-0" / "raw", work / "rerun.csv", p)
            print(f"  rerun of the images: fastai sent {fa_requests} requests and now holds "
                  f"{files_in(work / 'images-fastai-0')} files; ours sent {counter.value - before} and holds "
                  f"{files_in(work / 'images-ours-0' / 'raw')}")
        if args.skip != "verify":
            src = work / "verify-raw"
            if (work / "images-ours-0").exists():
                shutil.copytree(work / "images-ours-0" / "raw" / "c", src / "c")
            else:
                download_all({"c": good}, src, work / "verify-dl.csv", p)
            (src / ".journal.jsonl").unlink(missing_ok=True)
            vp = replace(vp0, max_size=500, workers=args.workers)

            def fastai_verify(dest: Path) -> int:
                bad_files = verify_images(get_image_files(src))
                assert not bad_files
                resize_images(src / "c", max_size=500, dest=dest, max_workers=args.workers)
                return files_in(dest)

            def ours_verify(dest: Path) -> int:
                checks = verify_all(src, dest, dest.with_suffix(".csv"), vp)
                return sum(c.status == "ok" for c in checks)

            compare("verify", files_in(src), fastai_verify, ours_verify)
    finally:
        web.terminate()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"medians of {args.repeat} runs\n{'':<10}{'images':>7}{'fastai s':>10}{'ours s':>9}{'fastai /s':>11}"
          f"{'ours /s':>9}{'ratio':>7}{'paired':>8}")
    labels = {"list": "download, images + bad URLs", "images": "download, images only",
              "verify": "verify + resize to 500 px"}
    for name, n, theirs, ours, paired in rows:
        print(f"{name:<10}{n:>7}{theirs:>10.2f}{ours:>9.2f}{n / theirs:>11.1f}{n / ours:>9.1f}{theirs / ours:>7.2f}"
              f"{paired:>8.2f}   {labels[name]}")
    print("ratio: of the medians; paired: median of each run's fastai / ours (the runs side by side)")


if __name__ == "__main__":
    main()
