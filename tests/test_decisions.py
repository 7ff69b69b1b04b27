"""decisions.py: the one parser and writer of the decisions file, under what editors and spreadsheets write."""

from __future__ import annotations

from pathlib import Path

import pytest

from bearid import decisions
from bearid.decisions import DecisionsError

CLASSES = ["grizzly", "black", "teddy"]


def write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "decisions.csv"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_bom_header_case_spaces_and_extra_columns(tmp_path):
    path = write(tmp_path, "\ufeffPath , Action,NOTE,Label\r\n a.jpg ,KEEP,looks fine,\r\nb.jpg,relabel,\"two\nlines\", teddy \r\n")
    d = decisions.read(path, CLASSES)
    assert d.bom and d.fields == ["path", "action", "note", "label"]
    assert d.rows == {"a.jpg": {"path": "a.jpg", "action": "keep", "note": "looks fine", "label": ""},
                      "b.jpg": {"path": "b.jpg", "action": "relabel", "note": "two\nlines", "label": "teddy"}}


def test_rewrite_keeps_bom_extra_columns_and_other_rows(tmp_path):
    path = write(tmp_path, "\ufeffpath,note,action,label\na.jpg,mine,keep,\nb.jpg,,delete,\n")
    d = decisions.read(path, CLASSES)
    d.set("a.jpg", "relabel", "black")
    d.set("c.jpg", "delete", "")
    decisions.write(path, d)
    assert path.read_bytes() == ("\ufeffpath,note,action,label\na.jpg,mine,relabel,black\nb.jpg,,delete,\n"
                                 "c.jpg,,delete,\n").encode()
    assert decisions.read(path, CLASSES).rows["a.jpg"]["note"] == "mine"


def test_missing_or_empty_file_means_no_decisions(tmp_path):
    assert decisions.read(tmp_path / "none.csv").rows == {}
    assert decisions.read(write(tmp_path, "")).rows == {}


@pytest.mark.parametrize("text, line, message", [
    ("path,action,label\n\n\na.jpg,remove,\n", 4, "unknown action 'remove'"),  # after blank lines
    ('path,action,label\na.jpg,keep,"x\ny"\nb.jpg,relabel,panda\n', 4, "relabel to unknown class 'panda'"),
    ("a.jpg,delete,\nb.jpg,keep,\n", 1, "header ['a.jpg', 'delete', ''] lacks ['path', 'action']"),
    ("path,action,label\na.jpg,keep,\nb.jpg,keep,\na.jpg,delete,\n", 4, "decided again, differently from line 2"),
    ("path,action,label\n ,delete,\n", 2, "empty path"),
    ("path,action,path\na,keep,b\n", 1, "repeats the columns ['path']"),
    ("path,action\na.jpg,keep,extra,more\n", 2, "more than the header's 3 columns"),
])
def test_bad_file_is_an_error_naming_the_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(DecisionsError) as e:
        decisions.read(path, CLASSES)
    assert str(e.value).startswith(f"{path}:{line}: ") and message in str(e.value)


def test_same_decision_twice_is_fine(tmp_path):
    rows = decisions.read(write(tmp_path, "path,action,label\na.jpg,keep,\n a.jpg , keep,\n"), CLASSES).rows
    assert list(rows) == ["a.jpg"]


def test_non_utf8_byte_is_named(tmp_path):
    path = write(tmp_path, b"path,action,label\na.jpg,keep,\nb\xe9.jpg,delete,\n")
    with pytest.raises(DecisionsError, match=rf"{path}:3: byte 0xe9 is not UTF-8"):
        decisions.read(path)
