"""Hostile input, as a fair but unfriendly tester sends it: nothing lost, nothing leaked, no traceback.

One probe per hole of the review page, the URL lists, the model folder and the
server; the module tests cover the ordinary behaviour of each part.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from test_review import CLASSES, app_for, client_for, project  # noqa: F401 - the fixture

CANDIDATE = "data/images/grizzly/0.png"


# --- the review page -------------------------------------------------------------------------

def test_spreadsheet_decisions_file_keeps_every_row_after_a_click(project):
    """A 'CSV UTF-8' file from a spreadsheet: BOM, capitalised header, a note column."""
    path = project / "cleaning/decisions.csv"
    path.write_bytes("\ufeffPath,Action,Label,Note\r\ndata/images/old.png,delete,,blurry\r\n".encode())
    client = client_for(project)
    assert client.get("/api/candidates").json()["decisions_error"] is None
    assert client.post("/api/decisions", json={"path": CANDIDATE, "action": "keep"}).status_code == 200
    assert path.read_bytes() == ("\ufeffpath,action,label,note\ndata/images/old.png,delete,,blurry\n"
                                 f"{CANDIDATE},keep,,\n").encode()


@pytest.mark.parametrize("content", [
    b"path,action,label\ndata/images/old.png,delete,\nbad\xff.png,keep,\n",  # not UTF-8
    b"data/images/old.png,delete,\n",  # no header
    b"path,action,label\ndata/images/old.png,delete,\ndata/images/old.png,keep,\n",  # conflicting rows
])
def test_unreadable_decisions_file_is_never_overwritten(project, content):
    path = project / "cleaning/decisions.csv"
    path.write_bytes(content)
    client = client_for(project)
    listing = client.get("/api/candidates")
    assert listing.status_code == 200 and str(path) in listing.json()["decisions_error"]
    r = client.post("/api/decisions", json={"path": CANDIDATE, "action": "keep"})
    assert r.status_code == 409 and "nothing saved" in r.json()["error"]
    assert path.read_bytes() == content


@pytest.mark.parametrize("headers, status", [
    ({"content-type": "text/plain", "origin": "https://evil.example"}, 403),  # a page elsewhere
    ({"content-type": "text/plain"}, 415),  # a simple request needs no preflight: refused by type
    ({"content-type": "application/json", "origin": "http://127.0.0.1:9999"}, 403),  # another local port
    ({"content-type": "application/json", "sec-fetch-site": "cross-site"}, 403),
    ({"content-type": "application/json", "host": "rebound.example:8001"}, 403),  # DNS rebinding
])
def test_cross_origin_writes_are_refused(project, headers, status):
    before = (project / "cleaning/decisions.csv").read_bytes()
    r = client_for(project).post("/api/decisions", headers=headers,
                                 content=b'{"path": "%s", "action": "delete"}' % CANDIDATE.encode())
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert (project / "cleaning/decisions.csv").read_bytes() == before


def test_rebound_host_cannot_read_candidates(project):
    r = TestClient(app_for(project), base_url="http://rebound.example:8001").get("/api/candidates")
    assert r.status_code == 403 and "rebound.example" in r.json()["error"]
    ok = client_for(project).post("/api/decisions", json={"path": CANDIDATE, "action": "keep"},
                                  headers={"origin": "http://127.0.0.1:8001"})
    assert ok.status_code == 200  # the page's own origin


def test_parallel_set_and_undo_of_one_path_answer_json(project):
    client = client_for(project)
    failures = []

    def hammer(action: str) -> None:
        for _ in range(25):
            r = client.post("/api/decisions", json={"path": CANDIDATE, "action": action})
            if r.status_code != 200 or "decision" not in r.json():
                failures.append((r.status_code, r.text))

    threads = [threading.Thread(target=hammer, args=(a,)) for a in ("keep", "undecided", "delete", "undecided")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    rows = (project / "cleaning/decisions.csv").read_text().splitlines()
    assert rows[:2] == ["path,action,label", "data/images/old.png,delete,"]  # the earlier decision survives
