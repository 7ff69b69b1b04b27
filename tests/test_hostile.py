"""Hostile input, as a fair but unfriendly tester sends it: nothing lost, nothing leaked, no traceback.

One probe per hole of the review page, the URL lists, the model folder and the
server; the module tests cover the ordinary behaviour of each part.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml
from PIL import Image
from starlette.testclient import TestClient

from bearid import download, sources
from bearid.export import META, WEIGHTS, meta_hash
from bearid.predict_cli import main as predict_main
from bearid.atomic import read_csv
from bearid.params import DownloadParams
from helpers import PROJECT_PARAMS, merge, project_params
from http_fixtures import HTML, PNG, serve
from test_review import CLASSES, app_for, client_for, make_project

CANDIDATE = "data/images/grizzly/0.png"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """test_review's project: five candidates and one earlier decision."""
    return make_project(tmp_path)


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


def test_review_binds_to_this_machine_unless_told_and_warns_when_told(project, monkeypatch, capsys):
    import uvicorn

    from bearid import review

    (project / "params.yaml").write_text(yaml.safe_dump(merge(PROJECT_PARAMS, {"fetch": {"source": "files",
                                                                                        "classes": CLASSES}})))
    monkeypatch.chdir(project)
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    assert review.main([]) == 0
    assert started[-1][1]["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err
    assert review.main(["--host", "0.0.0.0", "--allow-host", "bears.lan"]) == 0
    assert started[-1][1]["host"] == "0.0.0.0"
    assert "warning: listening on 0.0.0.0, not only on this machine" in capsys.readouterr().err
    client = TestClient(started[-1][0], base_url="http://bears.lan:8001")
    assert client.get("/api/candidates").status_code == 200
    other = TestClient(started[-1][0], base_url="http://elsewhere.example:8001")
    assert other.get("/api/candidates").status_code == 403


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


# --- URL lists ---------------------------------------------------------------------------------

QUICK = project_params("download", workers=4, connect_timeout=1.0, read_timeout=1.0, deadline=2.0, retries=0)
SECRET = b"root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\n"


def downloaded(tmp_path: Path, urls: list[str], p: DownloadParams = QUICK) -> list[download.Result]:
    """download_all in a thread that must end within 30 s: a hang fails the test instead of the suite."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(download.download_all(
        {"c": urls}, tmp_path / "raw", tmp_path / "download.csv", p, metrics=tmp_path / "metrics.json")))
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "download hung past download.deadline"
    return out[0]


def everything_written(tmp_path: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(tmp_path.rglob("*")) if f.is_file() and f.suffix != ".png")


def test_local_files_outside_the_web_folder_are_never_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/web").mkdir(parents=True)
    (tmp_path / "data/web/a.png").write_bytes(PNG)
    (tmp_path / "shadow").write_bytes(SECRET)
    (tmp_path / "data/web/link.png").symlink_to(tmp_path / "shadow")  # a link out of the folder
    results = downloaded(tmp_path / "out", ["file:data/web/a.png", f"file://{tmp_path}/shadow",
                                            "file:data/web/../../shadow", "file:data/web/link.png",
                                            "file:///proc/self/environ"], project_params("download", deadline=2.0))
    assert [(r.status, r.reason) for r in results] == [("ok", "ok")] + [("failed", "outside_file_dir")] * 4
    assert b"hashhashhash" not in everything_written(tmp_path / "out")


def test_non_image_local_file_leaves_no_byte_in_any_output(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web/notes.jpg").write_bytes(SECRET)
    (tmp_path / "web/page.jpg").write_bytes(HTML)
    results = downloaded(tmp_path / "out", [f"file://{tmp_path}/web/notes.jpg", f"file://{tmp_path}/web/page.jpg"],
                         replace(QUICK, file_dir=str(tmp_path / "web")))
    assert [(r.reason, r.detail) for r in results] == [
        ("not_an_image", "no known image signature (Content-Type none)"),
        ("not_an_image", "an HTML page (Content-Type none)")]
    written = everything_written(tmp_path / "out")
    assert b"hashhashhash" not in written and b"404 Not Found" not in written


def test_a_fifo_is_refused_within_the_deadline(tmp_path):
    (tmp_path / "web").mkdir()
    os.mkfifo(tmp_path / "web/pipe.jpg")  # opened for reading, it would block until a writer comes
    results = downloaded(tmp_path / "out", [f"file://{tmp_path}/web/pipe.jpg"],
                         replace(QUICK, file_dir=str(tmp_path / "web")))
    assert (results[0].reason, results[0].detail) == ("file_unreadable", f"{tmp_path}/web/pipe.jpg: not a regular file")


def test_credentials_in_urls_are_never_written(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with serve() as web:
        host = web.url.split("//")[1]
        results = downloaded(tmp_path / "out", [f"http://alice:hunter2@{host}/bear.png",
                                                f"http://bob:s3cret@{host}/nothing.jpg"])
        sent = [h.get("Authorization") for h in web.headers]
    assert [(r.url, r.reason) for r in results] == [(f"{web.url}/bear.png", "ok"), (f"{web.url}/nothing.jpg", "http_404")]
    assert sent == [None, None]
    written = everything_written(tmp_path / "out")
    assert b"hunter2" not in written and b"s3cret" not in written and b"alice" not in written


def test_url_list_with_credentials_and_bad_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "urls").mkdir()
    (tmp_path / "urls/grizzly.txt").write_bytes(b"https://u:pw@a.example/1.jpg\nhttps://b.example/\xe9.jpg\n"
                                                b"https://c.example/3.jpg\n")
    (tmp_path / "urls/black.txt").write_bytes(b"https://d.example/4.jpg\n")
    hits = sources.from_files(project_params("fetch", source="files", classes=["grizzly", "black"], files_dir="urls"))
    assert [h.url for h in hits["grizzly"]] == ["https://a.example/1.jpg", "https://c.example/3.jpg"]
    log = capsys.readouterr()
    assert "urls/grizzly.txt:2: byte 0xe9 is not UTF-8" in log.out + log.err and "pw" not in log.out + log.err


def test_report_of_a_list_from_the_web_has_no_local_path_in_it(tmp_path):
    results = downloaded(tmp_path / "out", ["file:///etc/passwd"], replace(QUICK, file_dir=""))
    assert (results[0].reason, results[0].status) == ("scheme_not_allowed", "failed")
    assert read_csv(tmp_path / "out/download.csv")[0]["reason"] == "scheme_not_allowed"


# --- the model folder --------------------------------------------------------------------------

def tampered(model_dir: Path, tmp_path: Path, change, rehash: bool = False) -> Path:
    """A copy of the exported model with model.json changed by `change(meta)`."""
    out = tmp_path / "model"
    shutil.copytree(model_dir, out)
    meta = json.loads((out / META).read_text())
    change(meta)
    if rehash:
        meta["meta_sha256"] = meta_hash(meta)
    (out / META).write_text(json.dumps(meta))
    return out


@pytest.mark.parametrize("change, rehash, words", [
    (lambda m: m["classes"].reverse(), False, "changed after export"),  # labels swapped, hash kept
    (lambda m: m.pop("meta_sha256"), False, "meta_sha256 is null"),
    (lambda m: m.pop("format"), False, "format None"),
    (lambda m: m.update(format=99), False, "format 99"),
    (lambda m: m.update(classes="grizzly"), True, "classes is \"grizzly\""),
    (lambda m: m.update(classes=["a", "a", "b"]), True, "distinct class names"),
    (lambda m: m.update(img_size="big"), True, "img_size"),
    (lambda m: m.update(std=[0, 1, 1]), True, "three positive numbers"),
    (lambda m: m.update(arch="nosuchnet"), True, "unknown architecture 'nosuchnet'"),
    (lambda m: m.update(classes=m["classes"] + ["extra"]), True, "does not fit"),
    (lambda m: m.update(weights_sha256="0" * 64), True, "from different exports"),
    (lambda m: m.update(params=[]), True, "params"),
])
def test_malformed_model_json_is_refused_in_one_line(model_dir, tmp_path, capsys, change, rehash, words):
    out = tampered(model_dir, tmp_path, change, rehash)
    image = tmp_path / "x.png"
    from PIL import Image
    Image.new("RGB", (20, 20), (9, 99, 9)).save(image)
    assert predict_main([str(image), "--model", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and words in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_model_json_that_is_not_json(model_dir, tmp_path, capsys):
    out = tmp_path / "model"
    shutil.copytree(model_dir, out)
    (out / META).write_bytes(b"\xff{not json")
    (out / WEIGHTS).write_bytes(b"")
    assert predict_main([str(tmp_path), "--model", str(out)]) == 2
    assert "not readable JSON" in capsys.readouterr().err


# --- the server under large-pixel uploads --------------------------------------------------------

DECODE_MB = 256
SLACK_MB = 200  # allocator and HTTP buffers: the stated ceiling is baseline + DECODE_MB + SLACK_MB


def png(size: tuple[int, int], color=(90, 140, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc: this test needs Linux")


@pytest.fixture
def server_process(model_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bearid.cli", "serve", "--model", str(model_dir), "--port",
                             str(port), "--max-decode-mb", str(DECODE_MB), "--decoders", "2", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            httpx.get(f"{url}/health", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "bearid serve did not start within 120 s"
            time.sleep(0.2)
    yield proc, url
    proc.kill()
    proc.wait(10)


def test_large_pixel_uploads_stay_within_the_memory_ceiling(server_process):
    proc, url = server_process
    huge = png((9000, 9000))  # a few hundred KB of PNG, 243 MB of RGB pixels
    large = png((4000, 4000))  # 16 Mpx: just within the per-upload budget of 256 MB / 2 decoders
    def post(data):
        return httpx.post(f"{url}/predict", files={"file": ("x.png", data, "image/png")}, timeout=120)
    assert post(png((64, 64))).status_code == 200
    baseline = peak_rss_mb(proc.pid)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, [huge, large] * 4))
    assert [r.status_code for r in answers] == [413, 200] * 4, [r.text for r in answers]
    assert "9000x9000 pixels is more than this server decodes" in answers[0].json()["error"]
    peak = peak_rss_mb(proc.pid)
    print(f"server peak RSS {baseline:.0f} MB after start, {peak:.0f} MB after 8 concurrent uploads; "
          f"ceiling {baseline + DECODE_MB + SLACK_MB:.0f} MB")
    assert peak < baseline + DECODE_MB + SLACK_MB


def test_jpeg_is_scaled_on_load_and_png_refused_above_the_budget(model_dir):
    from bearid.predict import BadImage, Predictor

    predictor = Predictor(model_dir)
    buf = io.BytesIO()
    Image.new("RGB", (4000, 4000), (30, 60, 90)).save(buf, format="JPEG")
    budget = 1_000_000  # a JPEG is DCT-scaled to 500x500 before decoding, so it fits
    assert predictor.decode(buf.getvalue(), budget).shape == (3, predictor.size, predictor.size)
    with pytest.raises(BadImage) as e:
        predictor.decode(png((4000, 4000)), budget)
    assert e.value.kind == "over_budget" and "4000x4000 pixels" in str(e.value)


# --- a killed verify stage ----------------------------------------------------------------------

def test_killed_verify_leaves_no_worker_running(tmp_path):
    import psutil

    raw = tmp_path / "data/raw/c"
    raw.mkdir(parents=True)
    tile = png((900, 700), (10, 200, 30))
    for i in range(400):
        (raw / f"{i:04d}.png").write_bytes(tile[:-12] + i.to_bytes(4, "big") + tile[-8:])  # distinct files
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merge(PROJECT_PARAMS, {"verify": {"workers": 2, "max_size": 64}})))
    root = Path(__file__).resolve().parents[1]
    stage = subprocess.Popen([sys.executable, "-m", "stages.verify"], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(root)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    workers: list = []
    while len(workers) < 2:
        assert stage.poll() is None and time.monotonic() < deadline, "verify ended before its workers were seen"
        workers = psutil.Process(stage.pid).children(recursive=True)
        time.sleep(0.05)
    time.sleep(0.5)
    stage.kill()
    stage.wait(10)
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == [], f"workers outlived the killed stage: {alive}"
    written = sorted((tmp_path / "data/images").rglob("*"))
    time.sleep(1)
    assert sorted((tmp_path / "data/images").rglob("*")) == written  # nothing writes any more


# --- params and training -------------------------------------------------------------------------

from bearid import params as params_module  # noqa: E402
from bearid import training  # noqa: E402
from bearid.params import ParamsError  # noqa: E402
from test_training import TINY, make_digits  # noqa: E402


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digits(tmp_path_factory.mktemp("digits"))


@pytest.mark.parametrize("update, section, words", [
    ({"train": {"aug": {"max_rotate": "lots"}}}, "train", "train.aug.max_rotate: 'lots' must be a number"),
    ({"train": {"aug": {"do_flip": 1}}}, "train", "train.aug.do_flip: 1 must be one of [False, True]"),
    ({"train": {"aug": {"pad_mode": "mirror"}}}, "train", "train.aug.pad_mode: 'mirror' must be one of"),
    ({"train": {"aug": {"min_zoom": 2.0, "max_zoom": 1.5}}}, "train", "min_zoom 2.0 is above max_zoom 1.5"),
    ({"split": {"test_pct": 0}}, "split", "split.test_pct: 0.0 leaves no test images"),
    ({"retrain": {"batch_size": -1}}, "train", "retrain.batch_size: -1 is out of range"),
    ({"retrain": {"aug": {"max_warp": 5}}}, "train", "retrain.aug.max_warp: 5 is out of range"),
])
def test_bad_params_fail_before_the_first_stage_that_reads_them(tmp_path, update, section, words):
    """Each bad value in the project's own params fails when the first stage reading it loads params."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(merge(PROJECT_PARAMS, update)))
    with pytest.raises(ParamsError) as e:
        params_module.load(section, path)
    assert words in str(e.value)


def test_a_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {epochs: 3\n")
    with pytest.raises(ParamsError, match="params.yaml: not valid YAML"):
        params_module.load("train", path)


def test_a_yaml_error_in_a_stage_outside_dvc_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("split: [valid_pct: 0.2\n")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "stages.split"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("split: error: params.yaml: not valid YAML")


def test_batch_size_above_the_training_set_fails_before_training(tmp_path):
    from bearid.atomic import write_csv

    write_csv(tmp_path / "manifest.csv", [{"path": f"{i}.png", "label": "ab"[i % 2], "split": "train" if i < 6 else "valid"}
                                          for i in range(8)], ["path", "label", "split"])
    p = project_params("train", batch_size=16)
    with pytest.raises(ParamsError, match="batch_size 16 is more than the 6 training images"):
        training.train_run(tmp_path / "manifest.csv", p, tmp_path / "out", "train")
    assert not (tmp_path / "out").exists()


def test_a_train_run_that_dies_leaves_no_metrics_that_look_real(digits, monkeypatch):
    """Killed after its epochs were logged but before it finished: no live/metrics.json at all."""
    monkeypatch.chdir(digits)
    p = project_params("train", **{**TINY, "freeze_epochs": 0, "epochs": 1})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what the process sees of a kill, as far as files go: nothing more is written

    monkeypatch.setattr(training.diagnosis, "diagnose", killed)
    with pytest.raises(KeyboardInterrupt):
        training.train_run(Path("manifest.csv"), p, Path("killed"), "train")
    assert (digits / "killed/.live.partial/metrics.json").is_file()  # DVCLive did write, elsewhere
    assert not (digits / "killed/live").exists()
