"""The review page: a person decides about the ranked cleaning candidates in a browser.

fastai's ImageClassifierCleaner needs Jupyter and deletes files. Here a small
Starlette app on 127.0.0.1 shows data/interpret/candidates.csv a page at a time
and writes each decision (keep, delete, relabel) at once, atomically, into the
git-tracked decisions file that the clean stage reads; a server killed between
clicks loses nothing. Images are served only from inside the data folder.

    bearid review [--port 8001] [--host 127.0.0.1] [--allow-host NAME] [--page-size 12]
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import decisions as decisions_file
from .atomic import read_csv
from .decisions import ACTIONS, DecisionsError
from .images import SUFFIXES
from .web import EXCEPTION_HANDLERS, error, page, static

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DecisionStore:
    """The decisions file, re-read on every request and rewritten whole (atomically) on every change.

    A file that cannot be read safely (not UTF-8, no header, conflicting rows) is
    never rewritten: every write raises DecisionsError until a person fixes it.
    """

    def __init__(self, path: Path, classes: list[str]):
        self.path, self.classes = path, classes
        self.lock = threading.Lock()

    def load(self) -> decisions_file.Decisions:
        return decisions_file.read(self.path, self.classes)

    def decide(self, path: str, action: str, label: str) -> dict | None:
        """Set (or, for action 'undecided', forget) one decision; return it as now saved."""
        with self.lock:
            decisions = self.load()
            if action == "undecided":
                if not decisions.forget(path):
                    return None
                row = None
            else:
                row = dict(decisions.set(path, action, label))
            decisions_file.write(self.path, decisions)
            return row


@dataclass
class Review:
    """What the handlers share (app.state.review)."""
    project: Path
    candidates: list[dict]
    store: DecisionStore
    classes: list[str]
    page_size: int
    data_root: Path

    @property
    def known(self) -> set[str]:
        return {c["path"] for c in self.candidates}


def safe_file(root: Path, candidate: Path) -> Path | None:
    """`candidate` if it is an image file inside `root` after resolving links and '..', else None."""
    try:
        target = candidate.resolve()
    except (OSError, ValueError, RuntimeError):
        return None
    if not target.is_relative_to(root.resolve()) or target.suffix.lower() not in SUFFIXES:
        return None
    return target if target.is_file() else None


def public(d: dict | None) -> dict | None:
    return None if d is None else {"action": d["action"], "label": d["label"]}


async def index(request: Request) -> Response:
    return page("review")


async def list_candidates(request: Request) -> Response:
    review: Review = request.app.state.review
    try:
        page_no = int(request.query_params.get("page", "0"))
    except ValueError:
        return error(400, "page must be an integer")
    pages = max(1, -(-len(review.candidates) // review.page_size))
    if not 0 <= page_no < pages:
        return error(400, f"page {page_no} out of range [0, {pages - 1}]")
    try:
        rows, problem = (await run_in_threadpool(review.store.load)).rows, None
    except DecisionsError as e:
        rows, problem = {}, str(e)
    shown = review.candidates[page_no * review.page_size:(page_no + 1) * review.page_size]
    items = [{**{k: c.get(k, "") for k in ("path", "label", "suggested", "score", "ood_score",
                                            "method", "reason", "split")},
              "image": f"/image/{(c.get('thumb') or c['path'])}",
              "decision": public(rows.get(c["path"]))}
             for c in shown]
    return JSONResponse({"page": page_no, "pages": pages, "total": len(review.candidates),
                          "classes": review.classes, "decided": len(review.known & rows.keys()),
                          "items": items, "decisions_error": problem})


async def decide(request: Request) -> Response:
    review: Review = request.app.state.review
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body must be JSON: {path, action, label}")
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object: {path, action, label}")
    path, action, label = (str(body.get(k) or "") for k in ("path", "action", "label"))
    if path not in review.known:
        return error(404, f"unknown image {path!r}: not among the candidates")
    if action not in (*ACTIONS, "undecided"):
        return error(400, f"unknown action {action!r}; one of {list(ACTIONS)} or 'undecided'")
    if action == "relabel" and label not in review.classes:
        return error(400, f"unknown class {label!r}; one of {review.classes}")
    try:
        saved = await run_in_threadpool(review.store.decide, path, action, label)
    except DecisionsError as e:
        return error(409, f"{e}; nothing saved until the file is fixed")
    return JSONResponse({"path": path, "decision": public(saved)})


async def image(request: Request) -> Response:
    review: Review = request.app.state.review
    target = safe_file(review.data_root, review.project / request.path_params["path"])
    return FileResponse(target) if target else error(404, "no such image")


class SameOrigin:
    """Only this machine's own page may use the app: DNS rebinding and other sites are refused.

    Every request must name an allowed Host (a rebinding site's name is not one);
    a request that changes state must come from this origin (Origin and
    Sec-Fetch-Site, when the browser sends them) and carry a JSON body, which no
    plain cross-site form or `text/plain` fetch can send without a CORS preflight
    that this app never grants.
    """

    def __init__(self, app: ASGIApp, hosts: set[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]") not in self.hosts:
            return error(403, f"Host {host!r} is not this review server's (allowed: {sorted(self.hosts)})")
        if scope["method"] in ("GET", "HEAD"):
            return None
        origin = headers.get("origin")
        if origin is not None and origin != f"{scope.get('scheme', 'http')}://{host}":
            return error(403, f"cross-origin request from {origin!r} refused")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return error(403, "cross-site request refused")
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return error(415, "send the decision as application/json")
        return None


def create_app(project: Path, candidates_csv: Path, decisions_csv: Path, classes: list[str],
               page_size: int = 12, data_dir: str = "data",
               hosts: tuple[str, ...] = LOOPBACK) -> Starlette:
    """The review app over one candidates file; paths in it are relative to `project`.

    `hosts`: the names a request's Host header may give (the address it is bound to).
    """
    app = Starlette(routes=[Route("/", index), Route("/api/candidates", list_candidates),
                            Route("/api/decisions", decide, methods=["POST"]),
                            Route("/image/{path:path}", image), static()],
                    exception_handlers=EXCEPTION_HANDLERS)
    app.state.review = Review(project, read_csv(candidates_csv), DecisionStore(decisions_csv, classes),
                              classes, page_size, project / data_dir)
    app.add_middleware(SameOrigin, hosts=set(hosts))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bearid review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default %(default)s: this machine only)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another name the page may be opened under (e.g. this machine's LAN name)")
    parser.add_argument("--page-size", type=int, default=12)
    parser.add_argument("--candidates", type=Path, default=Path("data/interpret/candidates.csv"))
    args = parser.parse_args(argv)
    from . import params

    if not args.candidates.is_file():
        parser.error(f"{args.candidates} not found: run `dvc repro interpret` first")
    decisions = Path(params.load("clean").decisions)
    classes = params.load("fetch").classes
    hosts = (*LOOPBACK, *args.allow_host, *([args.host] if args.host not in ("0.0.0.0", "::") else []))
    if args.host not in LOOPBACK:
        print(f"review: warning: listening on {args.host}, not only on this machine: anyone who can reach "
              f"it can see the candidates and change {decisions}", file=sys.stderr, flush=True)
    import uvicorn

    print(f"review: {args.candidates} -> decisions in {decisions}; open http://{args.host}:{args.port}/",
          flush=True)
    uvicorn.run(create_app(Path("."), args.candidates, decisions, classes, args.page_size, hosts=hosts),
                host=args.host, port=args.port, log_level="warning")
    return 0
