"""The review page: a person decides about the ranked cleaning candidates in a browser.

fastai's ImageClassifierCleaner needs Jupyter and deletes files. Here a small
Starlette app on 127.0.0.1 shows data/interpret/candidates.csv a page at a time
and writes each decision (keep, delete, relabel) at once, atomically, into the
git-tracked decisions file that the clean stage reads; a server killed between
clicks loses nothing. Images are served only from inside the data folder.

    bearid review [--port 8001] [--host 127.0.0.1] [--page-size 12]
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .atomic import read_csv, write_csv
from .vocab import ACTIONS

DECISION_FIELDS = ["path", "action", "label"]
IMAGE_TYPES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}


class DecisionStore:
    """The decisions file as a dict, rewritten whole (temp file + rename) on every change.

    Rows for images the candidates no longer list are kept as they are.
    """

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()

    def load(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        return {r["path"]: {"action": r.get("action") or "", "label": r.get("label") or ""}
                for r in read_csv(self.path) if r.get("path")}

    def set(self, path: str, action: str, label: str) -> None:
        with self.lock:
            decisions = self.load()
            decisions[path] = {"action": action, "label": label if action == "relabel" else ""}
            write_csv(self.path, ({"path": p, **d} for p, d in decisions.items()), DECISION_FIELDS)

    def forget(self, path: str) -> None:
        with self.lock:
            decisions = self.load()
            if decisions.pop(path, None) is not None:
                write_csv(self.path, ({"path": p, **d} for p, d in decisions.items()), DECISION_FIELDS)


def safe_file(root: Path, candidate: Path) -> Path | None:
    """`candidate` if it is an image file inside `root` after resolving links and '..', else None."""
    try:
        target = candidate.resolve()
    except (OSError, ValueError, RuntimeError):
        return None
    if not target.is_relative_to(root.resolve()) or target.suffix.lower() not in IMAGE_TYPES:
        return None
    return target if target.is_file() else None


def create_app(project: Path, candidates_csv: Path, decisions_csv: Path, classes: list[str],
               page_size: int = 12, data_dir: str = "data") -> Starlette:
    """The review app over one candidates file; paths in it are relative to `project`."""
    candidates = read_csv(candidates_csv)
    known = {c["path"] for c in candidates}
    store = DecisionStore(decisions_csv)
    data_root = project / data_dir

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def index(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def list_candidates(request: Request) -> Response:
        try:
            page = int(request.query_params.get("page", "0"))
        except ValueError:
            return error(400, "page must be an integer")
        pages = max(1, -(-len(candidates) // page_size))
        if not 0 <= page < pages:
            return error(400, f"page {page} out of range [0, {pages - 1}]")
        decisions = store.load()
        items = [{**{k: c.get(k, "") for k in ("path", "label", "suggested", "score", "ood_score",
                                                "method", "reason", "split")},
                  "image": f"/image/{(c.get('thumb') or c['path'])}",
                  "decision": decisions.get(c["path"])}
                 for c in candidates[page * page_size:(page + 1) * page_size]]
        return JSONResponse({"page": page, "pages": pages, "total": len(candidates), "classes": classes,
                             "decided": sum(p in decisions for p in known), "items": items})

    async def decide(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "body must be JSON: {path, action, label}")
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object: {path, action, label}")
        path, action, label = (str(body.get(k) or "") for k in ("path", "action", "label"))
        if path not in known:
            return error(404, f"unknown image {path!r}: not among the candidates")
        if action == "undecided":
            await run_in_thread(store.forget, path)
            return JSONResponse({"path": path, "decision": None})
        if action not in ACTIONS:
            return error(400, f"unknown action {action!r}; one of {list(ACTIONS)} or 'undecided'")
        if action == "relabel" and label not in classes:
            return error(400, f"unknown class {label!r}; one of {classes}")
        await run_in_thread(store.set, path, action, label)
        return JSONResponse({"path": path, "decision": store.load()[path]})

    async def image(request: Request) -> Response:
        target = safe_file(data_root, project / request.path_params["path"])
        return FileResponse(target) if target else error(404, "no such image")

    return Starlette(routes=[
        Route("/", index),
        Route("/api/candidates", list_candidates),
        Route("/api/decisions", decide, methods=["POST"]),
        Route("/image/{path:path}", image),
    ])


async def run_in_thread(fn, *args) -> None:
    """Disk writes off the event loop."""
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(fn, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bearid review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--page-size", type=int, default=12)
    parser.add_argument("--candidates", type=Path, default=Path("data/interpret/candidates.csv"))
    args = parser.parse_args(argv)
    from . import params

    if not args.candidates.is_file():
        parser.error(f"{args.candidates} not found: run `dvc repro interpret` first")
    decisions = Path(params.load("clean").decisions)
    classes = params.load("fetch").classes
    import uvicorn

    print(f"review: {args.candidates} -> decisions in {decisions}; open http://{args.host}:{args.port}/",
          flush=True)
    uvicorn.run(create_app(Path("."), args.candidates, decisions, classes, args.page_size),
                host=args.host, port=args.port, log_level="warning")
    return 0


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bearid review</title><link rel="icon" href="data:,">
<style>
body { font-family: sans-serif; margin: 1em; background: #fafafa; }
header { display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: .8em; margin-top: 1em; }
.card { background: white; border: 2px solid #ddd; border-radius: 6px; padding: .5em; }
.card.current { border-color: #1f6feb; box-shadow: 0 0 0 2px #1f6feb55; }
.card.keep { background: #eaf7ea; } .card.delete { background: #fbeaea; } .card.relabel { background: #eaf0fb; }
.card img { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; display: block; }
.meta { font-size: 13px; line-height: 1.4; } .reason { color: #a15c00; }
.decision { font-weight: bold; min-height: 1.2em; }
button { margin: 2px; } button.chosen { outline: 2px solid #1f6feb; }
kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 3px; font-size: 12px; }
#status.error { color: #b00; }
</style></head>
<body>
<header>
  <h1>Review cleaning candidates</h1>
  <span id="progress"></span>
  <button id="prev">&larr; page (p)</button><span id="pageinfo"></span><button id="next">page (n) &rarr;</button>
  <span id="status"></span>
</header>
<p class="meta">Keys on the selected card: <kbd>k</kbd> keep, <kbd>d</kbd> delete (does not belong),
<kbd>1</kbd>..<kbd>9</kbd> relabel to that class, <kbd>u</kbd> undo,
<kbd>j</kbd>/<kbd>&rarr;</kbd> next, <kbd>&larr;</kbd> previous, <kbd>n</kbd>/<kbd>p</kbd> next/previous page.
Each decision is saved at once. <span id="classes"></span></p>
<div id="grid"></div>
<script>
"use strict";
let state = {page: 0, pages: 1, items: [], classes: [], current: 0};
const $ = (id) => document.getElementById(id);

function status(text, bad) { const s = $("status"); s.textContent = text; s.className = bad ? "error" : ""; }

async function load(page) {
  const r = await fetch(`/api/candidates?page=${page}`);
  const data = await r.json();
  if (!r.ok) { status(data.error, true); return; }
  Object.assign(state, data, {current: 0});
  render();
}

function describe(d) {
  if (!d) return "";
  return d.action === "relabel" ? `relabel \u2192 ${d.label}` : d.action;
}

function render() {
  $("pageinfo").textContent = ` ${state.page + 1} / ${state.pages} `;
  $("progress").textContent = `${state.decided} of ${state.total} decided`;
  $("classes").textContent = "Classes: " + state.classes.map((c, i) => `${i + 1} ${c}`).join(", ");
  const grid = $("grid");
  grid.replaceChildren();
  state.items.forEach((item, i) => {
    const card = document.createElement("div");
    card.className = "card" + (item.decision ? " " + item.decision.action : "") + (i === state.current ? " current" : "");
    card.dataset.path = item.path;
    card.innerHTML = `<img alt="">
      <div class="meta"><div>given <b class="given"></b> &middot; suggested <b class="suggested"></b></div>
      <div>score <span class="score"></span> &middot; <span class="reason"></span></div>
      <div class="decision"></div></div><div class="buttons"></div>`;
    card.querySelector("img").src = item.image;
    card.querySelector("img").alt = item.path;
    card.querySelector(".given").textContent = item.label;
    card.querySelector(".suggested").textContent = item.suggested;
    card.querySelector(".score").textContent = Number(item.score).toFixed(3);
    card.querySelector(".reason").textContent = item.reason || "not flagged";
    card.querySelector(".decision").textContent = describe(item.decision);
    const buttons = card.querySelector(".buttons");
    const add = (text, action, label) => {
      const b = document.createElement("button");
      b.textContent = text; b.dataset.action = action; if (label) b.dataset.label = label;
      const d = item.decision;
      if (d && d.action === action && (action !== "relabel" || d.label === label)) b.classList.add("chosen");
      b.addEventListener("click", () => { state.current = i; decide(action, label); });
      buttons.appendChild(b);
    };
    add("keep", "keep");
    add("delete", "delete");
    state.classes.forEach((c) => { if (c !== item.label) add("\u2192 " + c, "relabel", c); });
    card.addEventListener("click", (e) => { if (e.target.tagName !== "BUTTON") { state.current = i; render(); } });
    grid.appendChild(card);
  });
}

async function decide(action, label) {
  const item = state.items[state.current];
  if (!item) return;
  const r = await fetch("/api/decisions", {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify({path: item.path, action, label: label || ""})});
  const data = await r.json();
  if (!r.ok) { status(data.error, true); return; }
  if (!item.decision && data.decision) state.decided += 1;
  if (item.decision && !data.decision) state.decided -= 1;
  item.decision = data.decision;
  status(`saved: ${item.path} ${describe(item.decision) || "undecided"}`);
  if (data.decision) move(1); else render();
}

function move(step) {
  const next = state.current + step;
  if (next >= state.items.length) { if (state.page + 1 < state.pages) { load(state.page + 1); return; } }
  else if (next < 0) { if (state.page > 0) { load(state.page - 1); return; } }
  else state.current = next;
  render();
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key;
  if (k === "k") decide("keep");
  else if (k === "d") decide("delete");
  else if (k === "u") decide("undecided");
  else if (/^[1-9]$/.test(k) && Number(k) <= state.classes.length) decide("relabel", state.classes[Number(k) - 1]);
  else if (k === "j" || k === "ArrowRight" || k === "ArrowDown") move(1);
  else if (k === "ArrowLeft" || k === "ArrowUp") move(-1);
  else if (k === "n") { if (state.page + 1 < state.pages) load(state.page + 1); }
  else if (k === "p") { if (state.page > 0) load(state.page - 1); }
  else return;
  e.preventDefault();
});
$("next").addEventListener("click", () => { if (state.page + 1 < state.pages) load(state.page + 1); });
$("prev").addEventListener("click", () => { if (state.page > 0) load(state.page - 1); });
load(0);
</script>
</body></html>
"""
