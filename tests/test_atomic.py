"""atomic.py: a published file has the content written and the mode a plain `open` would give it."""

from __future__ import annotations

import stat

import pytest

from bearid.atomic import FILE_MODE, TempFile, atomic_open, atomic_write_text


def test_published_file_gets_the_umask_mode_not_a_temp_files(tmp_path):
    target = tmp_path / "report.csv"
    atomic_write_text(target, "a,b\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n")  # what open() gives under this process's umask
    assert target.read_text() == "a,b\n"
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == FILE_MODE


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_publish_without_overwrite_refuses_a_taken_name(tmp_path):
    (tmp_path / "a").write_bytes(b"first")
    with TempFile(tmp_path) as tmp:
        tmp.file.write(b"second")
        with pytest.raises(FileExistsError):
            tmp.publish(tmp_path / "a", overwrite=False)
    assert (tmp_path / "a").read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["a"]
