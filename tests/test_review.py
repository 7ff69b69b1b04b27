"""review.py: the review page's routes, bad input, and a real browser deciding with mouse and keyboard."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
import yaml
from PIL import Image
from starlette.testclient import TestClient

from bearid.atomic import read_csv, write_csv
from bearid.interpret import CANDIDATE_FIELDS
from bearid.review import create_app
from helpers import PROJECT_PARAMS, merge

CLASSES = ["grizzly", "black", "teddy"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def make_project(tmp_path: Path) -> Path:
    """Five candidate images (thumbnails under data/interpret/thumbs), an earlier decision for another image."""
    rows = []
    for i in range(5):
        path = f"data/images/grizzly/{i}.png"
        thumb = f"data/interpret/thumbs/{i}.jpg"
        for p in (path, thumb):
            (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / p, format="PNG" if p.endswith("png") else "JPEG")
        rows.append({"path": path, "label": "grizzly", "suggested": "black", "score": f"{0.9 - i / 10}",
                     "ood_score": "0.1", "method": "confident_learning", "reason": "likely_mislabeled",
                     "thumb": thumb, "split": "train"})
    write_csv(tmp_path / "data/interpret/candidates.csv", rows, CANDIDATE_FIELDS)
    write_csv(tmp_path / "cleaning/decisions.csv", [{"path": "data/images/old.png", "action": "delete", "label": ""}],
              ["path", "action", "label"])
    (tmp_path / "secret.png").write_bytes((tmp_path / rows[0]["path"]).read_bytes())
    (tmp_path / "data/images/link.png").symlink_to(tmp_path / "secret.png")
    return tmp_path


def app_for(project: Path, page_size: int = 3):
    return create_app(project, project / "data/interpret/candidates.csv", project / "cleaning/decisions.csv",
                      CLASSES, page_size=page_size)


def client_for(project: Path, page_size: int = 3) -> TestClient:
    """A client that names the server as a browser on this machine does (the app checks Host)."""
    return TestClient(app_for(project, page_size), base_url="http://127.0.0.1:8001")


def decisions(project: Path) -> list[dict]:
    return read_csv(project / "cleaning/decisions.csv")


def test_candidates_a_page_at_a_time(project):
    client = client_for(project)
    assert "Review cleaning candidates" in client.get("/").text
    first = client.get("/api/candidates").json()
    assert first["total"] == 5 and first["pages"] == 2 and first["classes"] == CLASSES
    assert [i["path"] for i in first["items"]] == [f"data/images/grizzly/{i}.png" for i in range(3)]
    item = first["items"][0]
    assert item["image"] == "/image/data/interpret/thumbs/0.jpg" and item["decision"] is None
    assert (item["label"], item["suggested"], item["reason"]) == ("grizzly", "black", "likely_mislabeled")
    assert len(client.get("/api/candidates?page=1").json()["items"]) == 2
    assert client.get("/api/candidates?page=2").status_code == 400
    assert client.get("/api/candidates?page=x").status_code == 400


def test_decisions_are_written_at_once_and_shown_again(project):
    client = client_for(project)
    for path, action, label in [("0", "keep", ""), ("1", "delete", ""), ("2", "relabel", "teddy"), ("0", "delete", "")]:
        r = client.post("/api/decisions", json={"path": f"data/images/grizzly/{path}.png", "action": action, "label": label})
        assert r.status_code == 200, r.text
    assert decisions(project) == [
        {"path": "data/images/old.png", "action": "delete", "label": ""},  # not a candidate now: kept
        {"path": "data/images/grizzly/0.png", "action": "delete", "label": ""},
        {"path": "data/images/grizzly/1.png", "action": "delete", "label": ""},
        {"path": "data/images/grizzly/2.png", "action": "relabel", "label": "teddy"},
    ]
    items = client_for(project).get("/api/candidates").json()["items"]  # a restarted server
    assert [i["decision"] for i in items] == [{"action": "delete", "label": ""}, {"action": "delete", "label": ""},
                                              {"action": "relabel", "label": "teddy"}]
    r = client.post("/api/decisions", json={"path": "data/images/grizzly/1.png", "action": "undecided"})
    assert r.json()["decision"] is None and len(decisions(project)) == 3


@pytest.mark.parametrize("body, status, message", [
    ({"path": "data/images/nope.png", "action": "keep"}, 404, "unknown image"),
    ({"path": "data/images/grizzly/0.png", "action": "remove"}, 400, "unknown action 'remove'"),
    ({"path": "data/images/grizzly/0.png", "action": "relabel", "label": "panda"}, 400, "unknown class 'panda'"),
    ({"path": "data/images/grizzly/0.png", "action": "relabel"}, 400, "unknown class ''"),
    (["not", "an", "object"], 400, "JSON object"),
])
def test_bad_decisions_are_refused_and_change_nothing(project, body, status, message):
    before = (project / "cleaning/decisions.csv").read_bytes()
    r = client_for(project).post("/api/decisions", json=body)
    assert r.status_code == status and message in r.json()["error"]
    assert (project / "cleaning/decisions.csv").read_bytes() == before


def test_body_that_is_not_json(project):
    r = client_for(project).post("/api/decisions", content=b"path=x", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]


@pytest.mark.parametrize("url", [
    "/image/data/images/../../secret.png", "/image/data/images/%2e%2e/%2e%2e/secret.png",
    "/image/%2Fetc%2Fpasswd", "/image//etc/passwd", "/image/secret.png", "/image/data/images/link.png",
    "/image/data/interpret/candidates.csv", "/image/data/images/nope.png",
])
def test_images_only_from_inside_the_data_folder(project, url):
    r = client_for(project).get(url)
    assert r.status_code == 404, url


def test_image_is_served(project):
    r = client_for(project).get("/image/data/interpret/thumbs/1.jpg")
    assert r.status_code == 200 and r.content == (project / "data/interpret/thumbs/1.jpg").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(project):
    """The app on a free port in a thread, as `bearid review` runs it."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app_for(project), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_review_in_a_browser_with_mouse_and_keyboard(page, server, project):
    page.goto(server)
    cards = page.locator(".card")
    cards.first.wait_for()
    assert cards.count() == 3
    # the thumbnail arrives after its card: wait for it to load (a broken one completes with width 0)
    page.wait_for_function("(() => { const img = document.querySelector('.card img'); return img && img.complete; })()")
    assert page.locator(".card img").first.evaluate("img => img.naturalWidth") == 8
    cards.nth(0).get_by_role("button", name="keep").click()
    page.wait_for_function("document.querySelectorAll('.card')[0].querySelector('.decision').textContent === 'keep'")
    cards.nth(1).get_by_role("button", name="delete").click()
    page.wait_for_function("document.querySelectorAll('.card')[1].querySelector('.decision').textContent === 'delete'")
    cards.nth(2).get_by_role("button", name="→ teddy").click()  # the last card on the page: on to page 2
    page.wait_for_function("document.getElementById('pageinfo').textContent.trim() === '2 / 2'")
    page.keyboard.press("d")  # first card of page 2
    page.wait_for_function("document.querySelectorAll('.card')[0].querySelector('.decision').textContent === 'delete'")
    page.keyboard.press("j")
    page.keyboard.press("2")  # relabel to the second class
    page.wait_for_function("document.querySelectorAll('.card')[1].querySelector('.decision').textContent.includes('black')")
    assert {(r["path"], r["action"], r["label"]) for r in decisions(project)} == {
        ("data/images/old.png", "delete", ""),
        ("data/images/grizzly/0.png", "keep", ""), ("data/images/grizzly/1.png", "delete", ""),
        ("data/images/grizzly/2.png", "relabel", "teddy"), ("data/images/grizzly/3.png", "delete", ""),
        ("data/images/grizzly/4.png", "relabel", "black"),
    }
    page.reload()
    page.locator(".card").first.wait_for()
    shown = page.locator(".card .decision").all_text_contents()
    assert shown == ["keep", "delete", "relabel → teddy"]
    assert page.locator("#progress").text_content() == "5 of 5 decided"
    page.keyboard.press("n")
    page.wait_for_function("document.getElementById('pageinfo').textContent.trim() === '2 / 2'")
    assert page.locator(".card .decision").all_text_contents() == ["delete", "relabel → black"]
    assert page.errors == []


def start_review(project: Path, port: int) -> subprocess.Popen:
    """`bearid review` in its own process, as a user starts it; returns once it accepts connections."""
    proc = subprocess.Popen([sys.executable, "-m", "bearid.cli", "review", "--port", str(port), "--page-size", "3"],
                            cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("bearid review did not start listening within 60 s")


def test_no_decision_is_lost_when_the_server_is_killed_between_clicks(page, project):
    (project / "params.yaml").write_text(yaml.safe_dump(merge(PROJECT_PARAMS, {
        "fetch": {"source": "files", "classes": CLASSES}, "clean": {"decisions": "cleaning/decisions.csv"}})))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_review(project, port)
    try:
        page.goto(url)
        page.locator(".card").first.wait_for()
        page.locator(".card").nth(0).get_by_role("button", name="keep").click()
        page.wait_for_function("document.querySelectorAll('.card')[0].querySelector('.decision').textContent === 'keep'")
        proc.kill()  # SIGKILL: no shutdown handler runs
        proc.wait(10)
        assert ("data/images/grizzly/0.png", "keep", "") in {(r["path"], r["action"], r["label"]) for r in decisions(project)}
        proc = start_review(project, port)
        page.reload()
        page.locator(".card").first.wait_for()
        assert page.locator(".card .decision").first.text_content() == "keep"
        page.keyboard.press("j")
        page.keyboard.press("d")  # the second card, by keyboard
        page.wait_for_function("document.querySelectorAll('.card')[1].querySelector('.decision').textContent === 'delete'")
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    assert {(r["path"], r["action"]) for r in decisions(project)} == {
        ("data/images/old.png", "delete"), ("data/images/grizzly/0.png", "keep"), ("data/images/grizzly/1.png", "delete")}
    assert not [p for p in (project / "cleaning").iterdir() if p.name.endswith(".tmp")]  # nothing half-written
