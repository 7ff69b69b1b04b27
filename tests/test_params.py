"""params.py: every section of params.yaml parses, and bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bearid import params
from bearid.params import ParamsError, parse

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """A copy of the project's params.yaml, so tests can edit it."""
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    return path


def write(path: Path, update: dict) -> Path:
    raw = yaml.safe_load(path.read_text())
    for section, values in update.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("section", sorted(params.SECTIONS))
def test_every_section_of_the_project_params_loads(params_file, section):
    obj = params.load(section, params_file)
    assert isinstance(obj, params.SECTIONS[section])


def test_project_values_are_read(params_file):
    raw = yaml.safe_load(params_file.read_text())
    train = params.load("train", params_file)
    assert train.lr == raw["train"]["lr"] and train.arch == raw["train"]["arch"]
    fetch = params.load("fetch", params_file)
    assert fetch.classes == raw["fetch"]["classes"]
    assert isinstance(fetch.demo, params.DemoParams)
    assert fetch.demo.img_size == raw["fetch"]["demo"]["img_size"]


def test_missing_section_gives_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 0.01}\n")
    assert params.load("split", path) == params.SplitParams()
    assert params.load("train", path).lr == 0.01


def test_unknown_section_is_named(params_file):
    write(params_file, {"trian": {"lr": 0.1}})
    with pytest.raises(ParamsError, match="trian"):
        params.load("train", params_file)


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"^train: unknown keys \['learning_rate'\]"):
        parse("train", {"learning_rate": 0.1})


def test_unknown_nested_key_is_named():
    with pytest.raises(ParamsError, match=r"fetch\.demo: unknown keys \['colour'\]"):
        parse("fetch", {"demo": {"colour": 1}})


@pytest.mark.parametrize("key, value", [
    ("epochs", "4"),        # string for int
    ("epochs", True),       # bool is not an int here
    ("epochs", 2.5),        # float for int
    ("lr", True),           # bool for float
    ("lr", "fast"),         # non-numeric string for float
])
def test_wrong_type_is_named(key, value):
    with pytest.raises(ParamsError, match=rf"^train\.{key}: "):
        parse("train", {key: value})


def test_wrong_type_in_other_sections():
    with pytest.raises(ParamsError, match=r"^verify\.workers: "):
        parse("verify", {"workers": True})
    with pytest.raises(ParamsError, match=r"^fetch\.classes: .*must be a list"):
        parse("fetch", {"classes": "three"})
    with pytest.raises(ParamsError, match=r"^fetch\.source: 'bing' is not one of"):
        parse("fetch", {"source": "bing"})


@pytest.mark.parametrize("lr", [-0.1, 0, 0.0, float("nan"), 100])
def test_lr_out_of_range(lr):
    with pytest.raises(ParamsError, match=r"^train\.lr: "):
        parse("train", {"lr": lr})


def test_int_given_for_float_becomes_float():
    train = parse("train", {"lr": 1})
    assert train.lr == 1.0 and isinstance(train.lr, float)


def test_yaml_exponent_string_is_coerced_to_float(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-06\n")
    assert yaml.safe_load(path.read_text())["train"]["lr"] == "1e-06"  # the PyYAML quirk
    lr = params.load("train", path).lr
    assert lr == 1e-6 and isinstance(lr, float)


@pytest.mark.parametrize("valid, test", [(0.5, 0.5), (0.6, 0.45), (0.98, 0.02)])
def test_split_shares_must_leave_training_images(valid, test):
    with pytest.raises(ParamsError, match=r"split\.valid_pct \+ split\.test_pct"):
        parse("split", {"valid_pct": valid, "test_pct": test})


def test_split_shares_below_one_pass():
    assert parse("split", {"valid_pct": 0.5, "test_pct": 0.49}).test_pct == 0.49


def test_unknown_arch_is_named():
    with pytest.raises(ParamsError, match=r"^train\.arch: unknown architecture 'resnet9'"):
        parse("train", {"arch": "resnet9"})


def test_pretrained_accepts_bool_or_existing_file(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    assert parse("train", {"pretrained": True}).pretrained is True
    assert parse("train", {"pretrained": str(weights)}).pretrained == str(weights)
    with pytest.raises(ParamsError, match=r"^train\.pretrained: weights file .* not found"):
        parse("train", {"pretrained": str(tmp_path / "nope.pth")})
    with pytest.raises(ParamsError, match=r"^train\.pretrained: "):
        parse("train", {"pretrained": 1})


@pytest.mark.parametrize("classes, message", [
    ([], "empty"),
    (["three"], "one class"),
    (["three", "three"], "duplicate"),
    (["three", "../five"], "not a usable folder name"),
])
def test_bad_class_lists(classes, message):
    with pytest.raises(ParamsError, match=rf"^fetch\.classes: .*{message}"):
        parse("fetch", {"classes": classes})


def test_demo_classes_must_be_digit_names():
    with pytest.raises(ParamsError, match=r"^fetch\.classes: \['grizzly'\] are not demo classes"):
        parse("fetch", {"source": "demo", "classes": ["three", "grizzly"]})
    fetch = parse("fetch", {"source": "files", "classes": ["grizzly", "black", "teddy"]})
    assert fetch.classes == ["grizzly", "black", "teddy"]


def test_query_needs_placeholder():
    with pytest.raises(ParamsError, match=r"^fetch\.query: "):
        parse("fetch", {"source": "ddg", "classes": ["a", "b"], "query": "bears"})
    assert parse("fetch", {"query": "{cls} bear"}).query == "{cls} bear"


@pytest.mark.parametrize("query", ["{cls} {size}", "{cls} {0}", "{cls}}"])
def test_query_with_other_placeholders_is_named(query):
    """from_ddg calls query.format(cls=...): anything else in braces crashes there, after validation."""
    with pytest.raises(ParamsError, match=r"^fetch\.query: "):
        parse("fetch", {"source": "ddg", "classes": ["a", "b"], "query": query})


def test_nested_demo_range_is_named():
    with pytest.raises(ParamsError, match=r"^fetch\.demo\.mislabeled: 0\.9 is out of range"):
        parse("fetch", {"demo": {"mislabeled": 0.9}})


def test_section_must_be_a_mapping():
    with pytest.raises(ParamsError, match=r"^train: expected a mapping"):
        parse("train", [1, 2])


def test_retrain_overrides_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"^retrain\.overrides: unknown train keys \['epoch'\]"):
        parse("retrain", {"overrides": {"epoch": 8}})


def test_retrain_overrides_apply():
    train = parse("train", {"lr": 0.003, "epochs": 4})
    final = parse("retrain", {"overrides": {"epochs": 8}}).apply(train)
    assert final.epochs == 8
    assert final.lr == train.lr and final.arch == train.arch and final.seed == train.seed
    assert train.epochs == 4  # the original is unchanged
    assert parse("retrain", {}).apply(train) == train


def test_retrain_overrides_are_validated_on_apply():
    train = parse("train", {})
    with pytest.raises(ParamsError, match=r"^retrain\.overrides\.epochs: "):
        parse("retrain", {"overrides": {"epochs": "8"}}).apply(train)
    with pytest.raises(ParamsError, match=r"^retrain\.overrides\.lr: "):
        parse("retrain", {"overrides": {"lr": -1.0}}).apply(train)
