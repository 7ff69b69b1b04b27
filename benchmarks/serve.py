"""CPU inference and the web app, measured on the exported model (default: the demo's data/retrain).

1. Single image: our Predictor vs the bare forward pass and vs fastai's `learn.predict` (p50, p99).
2. Batches: Predictor on 32 images at once vs one at a time vs `learn.predict`, in images/s.
3. The server (`bearid serve` in a subprocess) under concurrent clients posting images to /predict,
   with micro-batching vs max_batch=1 (the anchor) and ONNX Runtime vs torch: requests/s, p50/p99,
   errors, peak RSS, against a sequential `learn.predict` loop.

    .venv/bin/python benchmarks/serve.py [--model data/retrain] [--images data/images] [--requests 1000]
                                         [--clients 8] [--threads N] [--workers N]

The load generator runs on the same CPU as the server, as a real client on this machine would.
On a CPU shared with other work, requests/s follows the share of CPU the server gets; the
server's CPU time per request is the steadier measure of what batching saves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safetensors.torch import load_file  # noqa: E402

from bearid import params  # noqa: E402
from bearid.export import WEIGHTS, read_meta  # noqa: E402
from bearid.learner import build_learner, dataloaders  # noqa: E402
from bearid.predict import Predictor  # noqa: E402

TARGETS = {"predict_vs_bare": 1.1, "predict_speedup_vs_fastai": 1.25, "batch_vs_fastai": 4.0,
           "server_vs_fastai_loop": 3.0, "rss_growth": 0.10, "p99_over_p50": 4.0}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000  # ms


def timings(fn, repeat: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def demo_images(model_dir: Path, n: int, root: Path) -> list[Path]:
    """Up to n images per class from root/<class>/, whose folder names are the model's classes."""
    classes = read_meta(model_dir)["classes"]
    return [p for c in classes for p in sorted((root / c).glob("*"))[:n]]


def fastai_learner(model_dir: Path, paths: list[Path], work_dir: Path):
    """The same weights in a fastai Learner on the CPU (no pickle), for `learn.predict`."""
    meta = read_meta(model_dir)
    p = params.parse("train", {**meta["params"], "pretrained": False, "device": "cpu",
                               "mixed_precision": False, "augment": False})
    root = paths[0].parents[1]
    rows = [{"path": str(path.relative_to(root)), "label": path.parent.name,
             "split": "train" if i % 2 else "valid"} for i, path in enumerate(paths)]
    learn = build_learner(dataloaders(pd.DataFrame(rows), p, root), p, work_dir)
    learn.model.load_state_dict(load_file(model_dir / WEIGHTS))
    return learn


def bench_predictor(model_dir: Path, paths: list[Path], repeat: int, threads: int | None) -> dict:
    predictor = Predictor(model_dir, threads=threads)
    images = [Image.open(p).convert("RGB") for p in paths[:32]]
    one = images[0]
    plain = Predictor(model_dir, channels_last=False, threads=threads)
    single = plain.preprocess(one)[None].float().div(255).sub(plain.mean).div(plain.std)

    def bare(model, fmt):
        batch = single.contiguous(memory_format=fmt)

        def run():
            with torch.inference_mode():
                model(batch)
        return run

    res = {
        "bare_forward": timings(bare(plain.model, torch.contiguous_format), repeat),
        "bare_forward_channels_last": timings(bare(predictor.model, torch.channels_last), repeat),
        "predictor": timings(lambda: predictor.predict_images([one]), repeat),
    }
    with tempfile.TemporaryDirectory() as work:
        learn = fastai_learner(model_dir, paths, Path(work))
        with learn.no_bar(), learn.no_logging():
            res["learn_predict"] = timings(lambda: learn.predict(paths[0]), max(20, repeat // 4))
    batch_s = timings(lambda: predictor.predict_images(images), max(5, repeat // 20), warmup=2)
    out = {f"{k}_ms": {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in res.items()}
    out["batch32_images_per_s"] = len(images) / float(np.median(batch_s))
    out["single_images_per_s"] = 1 / float(np.median(res["predictor"]))
    out["learn_predict_images_per_s"] = 1 / float(np.median(res["learn_predict"]))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, payloads: list[bytes], clients: int, requests: int) -> tuple[list[float], list[int]]:
    """`clients` connections posting images back to back until `requests` are done."""
    latencies: list[float] = []
    statuses: list[int] = []
    next_index = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for i in next_index:
            start = time.perf_counter()
            try:
                upload = {"file": ("x.jpg", payloads[i % len(payloads)], "image/jpeg")}
                r = await http.post("/predict", files=upload)
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(0)
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies, statuses


def bench_server(model_dir: Path, payloads: list[bytes], max_batch: int, max_wait_ms: float, runtime: str,
                 clients: int, requests: int, threads: int | None, workers: int | None) -> dict:
    port = free_port()
    cmd = [sys.executable, "-m", "bearid.cli", "serve", "--model", str(model_dir), "--port", str(port),
           "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--runtime", runtime]
    cmd += ["--threads", str(threads)] if threads else []
    cmd += ["--workers", str(workers)] if workers else []
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {' '.join(cmd)}")
                time.sleep(0.2)
        asyncio.run(load(url, payloads, clients, 4 * clients))  # warm-up
        proc = psutil.Process(server.pid)
        rss_start = peak = proc.memory_info().rss
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, proc.memory_info().rss)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        server_cpu, client_cpu = sum(proc.cpu_times()[:2]), time.process_time()
        start = time.perf_counter()
        latencies, statuses = asyncio.run(load(url, payloads, clients, requests))
        seconds = time.perf_counter() - start
        server_cpu, client_cpu = sum(proc.cpu_times()[:2]) - server_cpu, time.process_time() - client_cpu
        done.set()
        sampler.join()
        batching = httpx.get(f"{url}/health", timeout=10).json()["batching"]
    finally:
        server.terminate()
        server.wait(30)
    return {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "runtime": runtime, "requests": requests, "clients": clients,
            "requests_per_s": requests / seconds, "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "errors": sum(s != 200 for s in statuses), "recent_mean_batch": batching["recent_mean_batch"],
            "server_cpu_ms_per_request": 1000 * server_cpu / requests,
            "client_cpu_ms_per_request": 1000 * client_cpu / requests,
            "rss_start_mb": rss_start / 2**20, "rss_peak_mb": peak / 2**20,
            "rss_growth": peak / rss_start - 1}


def main() -> None:
    """Options, then each measurement in the order the table prints it (one straight script on
    purpose: every ratio's anchor is measured in the same run, just above it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "data/retrain")
    ap.add_argument("--images", type=Path, default=ROOT / "data/images", help="folders of images named by class")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=200, help="timed single-image calls")
    ap.add_argument("--max-batch", type=int, default=16, help="the batched server's max_batch")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="the batched server's max_wait_ms")
    ap.add_argument("--threads", type=int, default=None, help="torch threads, here and in the server")
    ap.add_argument("--workers", type=int, default=None, help="the server's forward passes at once (default: its own)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    os.chdir(ROOT)
    paths = demo_images(args.model, 16, args.images.resolve())
    payloads = [p.read_bytes() for p in paths]
    meta = read_meta(args.model)
    print(f"model {args.model} ({meta['arch']}, {meta['img_size']} px), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, torch threads {args.threads or torch.get_num_threads()}",
          flush=True)

    pred = bench_predictor(args.model, paths, args.repeat, args.threads)
    for key in ("bare_forward_ms", "bare_forward_channels_last_ms", "predictor_ms", "learn_predict_ms"):
        print(f"  {key[:-3]:<28} p50 {pred[key]['p50']:7.2f} ms   p99 {pred[key]['p99']:7.2f} ms")
    for key in ("batch32_images_per_s", "single_images_per_s", "learn_predict_images_per_s"):
        print(f"  {key:<28} {pred[key]:8.1f}")

    batched = (args.max_batch, args.max_wait_ms)
    servers = [bench_server(args.model, payloads, b, w, runtime, args.clients, args.requests, args.threads,
                            args.workers)
               for b, w, runtime in ((*batched, "onnxruntime"), (1, 0.0, "onnxruntime"), (*batched, "torch"))]
    for s in servers:
        print(f"  server {s['runtime']:<11} max_batch={s['max_batch']:<2} max_wait_ms={s['max_wait_ms']:<4g}"
              f" {s['requests_per_s']:7.1f} req/s   p50 {s['p50_ms']:6.1f} ms   p99 {s['p99_ms']:6.1f} ms"
              f"   errors {s['errors']}   mean batch {s['recent_mean_batch']:.1f}"
              f"   RSS {s['rss_start_mb']:.0f} -> peak {s['rss_peak_mb']:.0f} MB\n"
              f"      CPU per request: server {s['server_cpu_ms_per_request']:.1f} ms,"
              f" load generator {s['client_cpu_ms_per_request']:.1f} ms", flush=True)

    batched, anchor, eager = servers
    ratios = {
        "predict_vs_bare": pred["predictor_ms"]["p50"] / pred["bare_forward_ms"]["p50"],
        "predict_speedup_vs_fastai": pred["learn_predict_ms"]["p50"] / pred["predictor_ms"]["p50"],
        "batch_vs_fastai": pred["batch32_images_per_s"] / pred["learn_predict_images_per_s"],
        "batch_vs_one_at_a_time": pred["batch32_images_per_s"] / pred["single_images_per_s"],
        "server_vs_fastai_loop": batched["requests_per_s"] / pred["learn_predict_images_per_s"],
        "server_batched_vs_max_batch_1": batched["requests_per_s"] / anchor["requests_per_s"],
        "server_onnxruntime_vs_torch": batched["requests_per_s"] / eager["requests_per_s"],
        "server_cpu_per_request_max_batch_1_vs_batched": (anchor["server_cpu_ms_per_request"]
                                                          / batched["server_cpu_ms_per_request"]),
        "rss_growth": batched["rss_growth"],
        "p99_over_p50": batched["p99_ms"] / batched["p50_ms"],
    }
    print("ratios (target in brackets; bare/p99/RSS: at most, others: at least):")
    for key, value in ratios.items():
        target = f"[{TARGETS[key]:g}]" if key in TARGETS else ""
        print(f"  {key:<46} {value:6.2f} {target}")
    if args.json:
        args.json.write_text(json.dumps({"predictor": pred, "servers": servers, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
