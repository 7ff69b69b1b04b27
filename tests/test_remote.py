"""Remote storage round trips with the real dvc CLI: push everything, `git clone` afresh, `dvc pull`,
and the clone holds the same data, byte for byte, with nothing left to run.

Once against a local directory, once against a real S3 protocol server on 127.0.0.1 (moto's
standalone server, started here) through dvc-s3, configured as docs/experiments.md says.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ran, run

from bearid.predict import Predictor

UP_TO_DATE = "Data and pipelines are up to date."
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def data_hashes(repo: Path) -> dict[str, str]:
    """md5 of every file under data/ (the pipeline outputs), by relative path."""
    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted((repo / "data").rglob("*")) if p.is_file()}


def push_clone_pull(repo: Path, clone: Path, env: dict | None = None) -> None:
    """Commit the remote config, push, clone afresh, pull; the clone must match with nothing to rerun."""
    run(["git", "commit", "-qam", "remote storage"], repo)
    run(["dvc", "push"], repo, env)
    run(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    assert not (clone / "data/train/model.safetensors").exists()  # only git's files so far
    run(["dvc", "pull"], clone, env)
    assert run(["dvc", "status"], clone, env).strip() == UP_TO_DATE
    assert data_hashes(clone) == data_hashes(repo)
    assert ran(run(["dvc", "repro"], clone, env)) == set()  # everything came from the remote
    assert (clone / "dvc.lock").read_text() == (repo / "dvc.lock").read_text()


def test_local_directory_remote_round_trip(project_copy: Path, tmp_path: Path):
    store = tmp_path / "dvc-store"
    run(["dvc", "remote", "add", "-d", "storage", str(store)], project_copy)
    push_clone_pull(project_copy, tmp_path / "clone")
    assert any((store / "files/md5").iterdir())

    # The final model, registered in dvc.yaml's artifacts: fetched by name from the remote, it predicts as
    # the one the pipeline wrote.
    run(["git", "tag", "-a", "classifier@v0.1.0", "-m", "classifier v0.1.0"], project_copy)
    fetched = tmp_path / "fetched"
    run(["dvc", "artifacts", "get", str(project_copy), "classifier", "-o", str(fetched)], tmp_path)
    assert (fetched / "model.safetensors").read_bytes() == (project_copy / "data/retrain/model.safetensors").read_bytes()
    images = sorted((project_copy / "data/images").rglob("*.*"))[:8]
    expected = Predictor(project_copy / "data/retrain").predict_files(images)
    assert Predictor(fetched).predict_files(images).tolist() == expected.tolist()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    """moto's S3 server on a free local port, for this test only."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def test_s3_remote_round_trip(project_copy: Path, tmp_path: Path, s3_endpoint: str, monkeypatch):
    import boto3

    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="bearid")
    run(["dvc", "remote", "add", "-d", "s3remote", "s3://bearid/dvc-store"], project_copy)
    run(["dvc", "remote", "modify", "s3remote", "endpointurl", s3_endpoint], project_copy)
    push_clone_pull(project_copy, tmp_path / "clone", FAKE_AWS)
    stored = s3.list_objects_v2(Bucket="bearid", Prefix="dvc-store/files/md5/")
    assert stored["KeyCount"] > 0
