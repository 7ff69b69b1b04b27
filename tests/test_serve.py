"""serve.py + batching.py: every route and every bad upload through Starlette's TestClient, the
micro-batcher on its own, and a real uvicorn server under concurrent requests."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import threading
import time
import zlib
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image
from starlette.testclient import TestClient

from helpers import MODEL_CLASSES

from bearid.batching import MicroBatcher
from bearid.predict import Predictor
from bearid.serve import BodyTooLarge, ServeConfig, create_app, limited, main, parse_args

CLASSES = MODEL_CLASSES
LIMIT_MB = 0.25


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def in_own_loop(coro):
    """asyncio.run in a thread of its own: the session's Playwright keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()

def png(seed: int = 0, size: tuple[int, int] = (48, 40)) -> bytes:
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels: a decompression bomb's calling card."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def client(model_dir):
    app = create_app(ServeConfig(model=model_dir, max_upload_mb=LIMIT_MB, max_wait_ms=50, workers=1))
    with TestClient(app) as c:  # the `with` runs the lifespan: model loaded, worker started
        yield c


def post(client: TestClient, data: bytes, name: str = "x.png", **kwargs) -> httpx.Response:
    return client.post("/predict", files={"file": (name, data, "image/png")}, **kwargs)


def test_index_page(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<input type="file" name="file"' in r.text and '<script src="static/serve.js">' in r.text
    script = client.get("/static/serve.js")
    assert script.status_code == 200 and 'fetch("predict"' in script.text


def test_health(client, model_dir):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    meta = Predictor(model_dir).meta
    assert body["status"] == "ok" and body["model"] == model_dir.name and body["arch"] == "resnet18"
    assert body["runtime"] == "onnxruntime"
    assert body["classes"] == CLASSES and body["img_size"] == 32
    assert body["weights_sha256"] == meta["weights_sha256"]
    assert body["batching"]["max_batch"] == 16 and body["max_upload_mb"] == LIMIT_MB


def test_predict_matches_the_predictor(client, model_dir):
    data = png(1)
    r = post(client, data, "bear.png")
    assert r.status_code == 200
    body = r.json()
    assert body["filename"] == "bear.png" and len(body["predictions"]) == len(CLASSES)
    probs = Predictor(model_dir).predict_images([Image.open(io.BytesIO(data))])[0]
    expected = sorted(zip(CLASSES, probs), key=lambda lp: -lp[1])
    assert [p["label"] for p in body["predictions"]] == [label for label, _ in expected]
    np.testing.assert_allclose([p["probability"] for p in body["predictions"]],
                               [p for _, p in expected], atol=1e-5)


def test_predict_top_k(client):
    assert len(post(client, png(), params={"top_k": 1}).json()["predictions"]) == 1
    r = post(client, png(), params={"top_k": "two"})
    assert r.status_code == 400 and "top_k" in r.json()["error"]


def truncated_png() -> bytes:
    data = png(2, (64, 64))  # noise: most of the file is pixel data
    return data[:len(data) // 2]


BAD_UPLOADS = {
    "empty": (lambda: b"", "x.png", 400, "empty"),
    "html named .jpg": (lambda: b"<!doctype html><html><body>not a bear</body></html>", "bear.jpg", 415,
                        "not an image"),
    "truncated": (truncated_png, "x.png", 400, "truncated"),
    "bomb": (lambda: png_declaring(100_000, 100_000), "x.png", 413, "decompression bomb"),
    "bomb under Pillow's error level": (lambda: png_declaring(10_000, 9_000), "x.png", 413, "decompression bomb"),
    "oversized": (lambda: b"\0" * int(LIMIT_MB * 1024 * 1024 * 1.5), "x.png", 413, "larger than"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("kind", BAD_UPLOADS)
def test_bad_upload(client, kind):
    make, name, status, words = BAD_UPLOADS[kind]
    r = post(client, make(), name)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert post(client, png()).status_code == 200  # the app carries on


def test_oversized_without_content_length(client):
    def body():
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        for _ in range(8):
            yield b"\0" * 65536
        yield b"\r\n--B--\r\n"
    r = client.post("/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=B"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]


def test_limit_stops_reading_early():
    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True} for _ in range(100)]
    served = []

    async def receive():
        served.append(chunks[len(served)])
        return served[-1]

    async def read_all():
        wrapped = limited(receive, 2500)
        while True:
            await wrapped()
    with pytest.raises(BodyTooLarge):
        in_own_loop(read_all())
    assert len(served) == 3


@pytest.mark.parametrize("request_kwargs, status, words", [
    ({"files": {"image": ("x.png", png(), "image/png")}, "data": {"file": "text"}}, 400, "field 'file'"),
    ({"data": {"file": "not a file"}}, 415, "multipart"),
    ({"json": {"file": "x"}}, 415, "multipart"),
    ({"content": b"--B\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=B"}}, 400, ""),
])
def test_malformed_requests(client, request_kwargs, status, words):
    r = client.post("/predict", **request_kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_unknown_route_and_method_answer_json(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json()
    r = client.get("/predict")
    assert r.status_code == 405 and "error" in r.json()


def test_inference_failure_is_a_json_500_and_the_worker_survives(client, monkeypatch):
    predictor = client.app.state.predictor
    monkeypatch.setattr(predictor, "forward", lambda batch: (_ for _ in ()).throw(RuntimeError("boom")))
    r = post(client, png())
    assert r.status_code == 500 and r.json()["error"] == "inference failed: RuntimeError"
    monkeypatch.undo()
    assert post(client, png()).status_code == 200


@contextmanager
def held_worker(batcher: MicroBatcher):
    """Keep the batcher's worker inside its next batch until the block ends.

    What is submitted meanwhile queues up and then forms one batch, so the test
    depends on no timing window. Yields the event set once the worker is held.
    """
    held, release = threading.Event(), threading.Event()
    fn = batcher.fn

    def hold(items):
        held.set()
        release.wait(60)
        return fn(items)
    batcher.fn = hold
    try:
        yield held
    finally:
        batcher.fn = fn
        release.set()


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_queued_behind_a_busy_worker_share_one_forward_pass(client):
    batcher = client.app.state.batcher
    before = batcher.batches
    with ThreadPoolExecutor(8) as pool:
        with held_worker(batcher) as held:
            first = pool.submit(post, client, png(0))
            assert held.wait(60)
            rest = [pool.submit(post, client, png(i)) for i in range(1, 8)]
            wait_until(lambda: batcher.pending() == 7)
        batched = [f.result(60).json() for f in [first, *rest]]
    assert batcher.batches - before == 2 and list(batcher.recent_sizes)[-2:] == [1, 7]
    for i, answer in enumerate(batched):  # each request got its own image's answer
        alone = post(client, png(i)).json()
        assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in alone["predictions"]]
        assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
            [p["probability"] for p in alone["predictions"]], abs=1e-5)


# the micro-batcher on its own

def test_batcher_gathers_items_that_wait():
    started, release = threading.Event(), threading.Event()
    sizes = []

    def fn(items):
        sizes.append(len(items))
        started.set()
        release.wait(5)
        return [i * 10 for i in items]

    batcher = MicroBatcher(fn, max_batch=4, max_wait_ms=200)
    first = batcher.submit(0)
    started.wait(5)  # the worker is busy with [0]: no one else came while it gathered
    rest = [batcher.submit(i) for i in range(1, 7)]
    release.set()
    assert [f.result(5) for f in [first, *rest]] == [0, 10, 20, 30, 40, 50, 60]
    batcher.close()
    assert sizes == [1, 4, 2] and batcher.batches == 3


def test_batcher_workers_run_batches_at_once():
    """Two workers: the second batch starts while the first is still running (a barrier both must reach)."""
    both_inside = threading.Barrier(2, timeout=10)

    def fn(items):
        both_inside.wait()  # raises BrokenBarrierError after 10 s if the other batch never starts
        return [i + 1 for i in items]

    batcher = MicroBatcher(fn, max_batch=4, max_wait_ms=0, workers=2)
    first = batcher.submit(1)
    wait_until(lambda: batcher.pending() == 0)  # a worker took it and waits inside fn
    second = batcher.submit(2)  # only a second worker can take it while the first batch waits
    assert [first.result(15), second.result(15)] == [2, 3]
    batcher.close()
    assert batcher.batches == 2


def test_batcher_survives_a_failing_batch():
    def fn(items):
        if "bad" in items:
            raise ValueError("bad batch")
        return [s.upper() for s in items]

    batcher = MicroBatcher(fn, max_batch=8, max_wait_ms=0)
    with pytest.raises(ValueError, match="bad batch"):
        batcher.submit("bad").result(5)
    assert batcher.submit("ok").result(5) == "OK"
    batcher.close()
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.submit("late")


# the command line

def test_serve_args(tmp_path, capsys):
    config, host, port = parse_args(["--model", str(tmp_path), "--max-batch", "4", "--port", "8123"])
    assert config.model == tmp_path and config.max_batch == 4 and config.max_upload_mb == 10
    assert (host, port) == ("127.0.0.1", 8123) and config.runtime == "onnxruntime"
    assert parse_args(["--runtime", "torch"])[0].runtime == "torch"
    assert main(["--model", str(tmp_path)]) == 2
    assert "model.json: not found; export a model first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--max-batch", "0"])


# a real server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir):
    port = free_port()
    app = create_app(ServeConfig(model=model_dir, max_wait_ms=20, max_upload_mb=LIMIT_MB, workers=1))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_uvicorn_serves_concurrent_clients(server):
    app, url = server

    batcher = app.state.batcher
    before = batcher.batches

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            def upload(i: int):
                return http.post("/predict", files={"file": (f"{i}.png", png(i), "image/png")})
            with held_worker(batcher) as held:
                first = asyncio.ensure_future(upload(0))
                assert await asyncio.to_thread(held.wait, 60)
                rest = [asyncio.ensure_future(upload(i)) for i in range(1, 16)]
                bad = http.post("/predict", files={"file": ("x.jpg", b"<html></html>", "image/jpeg")})
                huge = http.post("/predict", files={"file": ("x.png", b"\0" * (1024 * 1024), "image/png")})
                refused = await asyncio.gather(bad, huge)  # answered while the worker is busy
                await asyncio.to_thread(wait_until, lambda: batcher.pending() == 15)
            return [*await asyncio.gather(first, *rest), *refused, await http.get("/health")]

    *ok, bad, huge, health = in_own_loop(run())
    assert [r.status_code for r in ok] == [200] * 16
    assert all(len(r.json()["predictions"]) == len(CLASSES) for r in ok)
    assert (bad.status_code, huge.status_code) == (415, 413)
    assert batcher.batches - before == 2 and list(batcher.recent_sizes)[-2:] == [1, 15]
    assert health.json()["batching"]["batches"] == batcher.batches


def test_uvicorn_refuses_a_streamed_oversized_upload(server):
    """No Content-Length to check up front: the limit applies while the body streams in."""
    _, url = server

    def body():
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        for _ in range(48):
            yield b"\0" * 65536
        yield b"\r\n--B--\r\n"
    r = httpx.post(f"{url}/predict", content=body(), timeout=30,
                   headers={"content-type": "multipart/form-data; boundary=B"})
    assert r.status_code == 413 and "larger than the limit of 0.25 MB" in r.json()["error"]
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200


def test_upload_page_in_a_browser(server, page, tmp_path):
    _, url = server
    image = tmp_path / "bear.png"
    image.write_bytes(png(3))
    page.goto(url + "/")
    page.set_input_files("input[name=file]", str(image))
    page.click("button")
    page.wait_for_selector("#out table")
    rows = page.locator("#out tr").all_inner_texts()
    assert len(rows) == len(CLASSES) and {r.split()[0] for r in rows} == set(CLASSES)
    assert all(r.strip().endswith("%") for r in rows)
    page.set_input_files("input[name=file]", {"name": "x.jpg", "mimeType": "image/jpeg", "buffer": b"<html>"})
    page.click("button")
    page.wait_for_selector("#out:has-text('Error: not an image')")
    assert all("status of 415" in e for e in page.errors)  # only the refused upload


def test_pages_are_package_data():
    """Every template and static file is matched by pyproject's package-data, so `pip install .` ships it."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bearid"]
    files = [f.relative_to(root / "bearid").as_posix() for d in ("templates", "static")
             for f in (root / "bearid" / d).iterdir()]
    assert {"templates/review.html", "templates/serve.html", "static/review.js", "static/serve.js"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
