"""`bearid serve`: the exported model behind a small Starlette app, run by uvicorn.

    GET  /          an HTML page: upload an image, see the top classes
    POST /predict   multipart field `file` -> {"predictions": [{"label", "probability"}, ...], ...}
    GET  /health    model name, arch, classes, weights sha256, batching counters

The model loads once at start-up. The event loop only reads uploads and awaits
futures: decoding runs in the thread pool, and forward passes run in one
inference thread that batches requests arriving close together (batching.py).
Every bad upload gets a 4xx with a JSON error naming the problem.

Memory is bounded by pixels, not upload bytes: a 236 KB PNG can hold 9000x9000
pixels. At most `decoders` uploads are decoded at once, each within a pixel
budget derived from `max_decode_mb`; a JPEG is DCT-scaled on load toward the
model's input size, anything still above the budget is refused with 413.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import AsyncIterator, Sequence

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive

from .batching import MicroBatcher
from .export import ModelError
from .predict import PEAK_BYTES_PER_PIXEL, BadImage, Predictor
from .runtime import OnnxNetwork
from .web import EXCEPTION_HANDLERS, error, page, static

log = logging.getLogger("bearid.serve")
MB = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file
STATUS = {"empty": 400, "not_image": 415, "bomb": 413, "over_budget": 413, "corrupt": 400}  # BadImage.kind


@dataclass(frozen=True)
class ServeConfig:
    model: Path = Path("data/retrain")
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_upload_mb: float = 10.0
    top_k: int = 5
    threads: int | None = max(1, (os.cpu_count() or 2) // 2)  # half the cores: HTTP and decoding need the rest
    workers: int = 1  # forward passes at once; on 2 cores a second one only splits the batches
    max_decode_mb: float = 256.0  # memory for the uploads being decoded at once
    decoders: int = 2  # uploads decoded at once; more wait their turn
    runtime: str = "onnxruntime"  # or "torch"; see runtime.py

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_pixels(self) -> int:
        """The pixel budget of one upload: its share of max_decode_mb at the decoder's peak bytes per pixel."""
        return int(self.max_decode_mb * MB / self.decoders / PEAK_BYTES_PER_PIXEL)


class BadUpload(Exception):
    """An upload we refuse; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class BodyTooLarge(Exception):
    pass


def limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises BodyTooLarge as soon as the body passes `limit` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge
        return message
    return wrapped


async def read_upload(request: Request, limit: int) -> tuple[bytes, str]:
    """The bytes and name of the multipart field `file`, read with the size limit enforced as it streams."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadUpload(415, "expected multipart/form-data with the image in the field 'file'")
    too_large = BadUpload(413, f"upload larger than the limit of {limit / MB:g} MB")
    body_limit = limit + MULTIPART_OVERHEAD
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > body_limit:
        raise too_large
    limited_request = Request(request.scope, limited(request.receive, body_limit))
    try:
        async with limited_request.form(max_files=1, max_fields=8) as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise BadUpload(400, "missing file: send the image in the multipart field 'file'")
            if file.size is not None and file.size > limit:
                raise too_large
            return await file.read(), file.filename or ""
    except BodyTooLarge:
        raise too_large from None
    except HTTPException as exc:  # a malformed multipart body
        raise BadUpload(400, f"malformed multipart body: {exc.detail}") from None


def forward_rows(predictor: Predictor, batch: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The batcher's function: one forward pass for the batch, one probability row per request."""
    return list(predictor.forward(torch.stack(list(batch))))


async def predict(request: Request) -> JSONResponse:
    state = request.app.state
    config: ServeConfig = state.config
    k = request.query_params.get("top_k", str(config.top_k))
    if not (k.isascii() and k.isdigit()) or int(k) < 1:
        return error(400, f"top_k={k!r}: expected a whole number >= 1")
    try:
        data, filename = await read_upload(request, config.max_upload_bytes)
        async with state.decoding:
            x = await run_in_threadpool(state.predictor.decode, data, config.max_pixels)
        del data
    except BadUpload as exc:
        return error(exc.status, exc.message)
    except BadImage as exc:
        return error(STATUS[exc.kind], str(exc))
    try:
        probs = await asyncio.wrap_future(state.batcher.submit(x))
    except Exception as exc:
        log.exception("inference failed")
        return error(500, f"inference failed: {type(exc).__name__}")
    top = state.predictor.top_k(probs, int(k))
    return JSONResponse({"predictions": [{"label": label, "probability": p} for label, p in top],
                         "filename": filename, "model": config.model.name})


async def health(request: Request) -> JSONResponse:
    state = request.app.state
    meta, batcher = state.predictor.meta, state.batcher
    sizes = list(batcher.recent_sizes)
    return JSONResponse({
        "status": "ok",
        "model": state.config.model.name,
        "model_dir": str(state.config.model),
        "arch": meta["arch"],
        "runtime": state.config.runtime,
        "classes": meta["classes"],
        "img_size": meta["img_size"],
        "weights_sha256": meta.get("weights_sha256"),
        "git_revision": meta.get("git_revision"),
        "batching": {"max_batch": batcher.max_batch, "max_wait_ms": state.config.max_wait_ms,
                     "batches": batcher.batches,
                     "recent_mean_batch": sum(sizes) / len(sizes) if sizes else None},
        "max_upload_mb": state.config.max_upload_mb,
        "decoding": {"decoders": state.config.decoders, "max_decode_mb": state.config.max_decode_mb,
                     "max_pixels": state.config.max_pixels},
    })


async def index(request: Request) -> HTMLResponse:
    return page("serve", model=request.app.state.config.model.name)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Load the model (unless main already did), start the inference thread; stop it at shutdown."""
    state, config = app.state, app.state.config
    if getattr(state, "predictor", None) is None:
        state.predictor = load_predictor(config)
    predictor = state.predictor
    state.batcher = MicroBatcher(lambda batch: forward_rows(predictor, batch),
                                 config.max_batch, config.max_wait_ms, name="inference",
                                 workers=config.workers)
    state.decoding = asyncio.Semaphore(config.decoders)
    try:
        yield
    finally:
        state.batcher.close()


def load_predictor(config: ServeConfig) -> Predictor:
    predictor = Predictor(config.model, threads=config.threads)
    if config.runtime == "onnxruntime":
        predictor.network = OnnxNetwork(predictor.model, predictor.size, config.threads or 1)
    return predictor


def create_app(config: ServeConfig, predictor: Predictor | None = None) -> Starlette:
    """The server app; `predictor` when the model is already loaded (main checks it before listening)."""
    app = Starlette(routes=[Route("/", index), Route("/predict", predict, methods=["POST"]),
                            Route("/health", health), static()],
                    exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.config, app.state.predictor = config, predictor
    return app


def parse_args(argv: list[str]) -> tuple[ServeConfig, str, int]:
    d = ServeConfig()
    ap = argparse.ArgumentParser(prog="bearid serve", description="Serve an exported model over HTTP.")
    ap.add_argument("--model", type=Path, default=d.model, help="exported model folder (default %(default)s)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--max-batch", type=int, default=d.max_batch, help="most requests per forward pass")
    ap.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                    help="how long the first request of a batch waits for others")
    ap.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb)
    ap.add_argument("--top-k", type=int, default=d.top_k, help="classes per answer unless ?top_k= says")
    ap.add_argument("--threads", type=int, default=d.threads,
                    help="threads per forward pass (default %(default)s: half the cores)")
    ap.add_argument("--workers", type=int, default=d.workers,
                    help="forward passes run at once (default %(default)s)")
    ap.add_argument("--max-decode-mb", type=float, default=d.max_decode_mb,
                    help="memory for decoding the uploads in flight; sets the pixel budget (default %(default)s)")
    ap.add_argument("--runtime", choices=["onnxruntime", "torch"], default=d.runtime,
                    help="what runs the network (default %(default)s: faster on small batches)")
    ap.add_argument("--decoders", type=int, default=d.decoders, help="uploads decoded at once (default %(default)s)")
    args = ap.parse_args(argv)
    if min(args.max_batch, args.top_k, args.decoders, args.workers) < 1 or args.max_wait_ms < 0 or args.max_upload_mb <= 0:
        ap.error("--max-batch, --top-k, --decoders and --workers must be >= 1, --max-wait-ms >= 0, --max-upload-mb > 0")
    if args.max_decode_mb / args.decoders * MB / PEAK_BYTES_PER_PIXEL < 1 << 20:
        ap.error("--max-decode-mb / --decoders leaves less than a megapixel per upload; raise --max-decode-mb")
    config = ServeConfig(**{k: getattr(args, k) for k in asdict(d)})
    return config, args.host, args.port


def main(argv: list[str]) -> int:
    import uvicorn

    config, host, port = parse_args(argv)
    try:
        predictor = load_predictor(config)
    except (ModelError, ImportError) as e:
        print(f"bearid serve: {e}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(config, predictor), host=host, port=port, log_level="info")
    return 0
