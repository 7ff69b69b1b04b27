"""params.py: every section of params.yaml parses, and bad values fail naming the key."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from bearid import params
from bearid.params import ParamsError, parse
from helpers import PROJECT_PARAMS, project_params

ROOT = Path(__file__).resolve().parents[1]
PROJECT = PROJECT_PARAMS


def full(section: str, values: dict):
    """Parse the project's values of a section with `values` changed (nested mappings merged)."""
    return project_params(section, **values)


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


def test_missing_section_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 0.01}\n")
    with pytest.raises(ParamsError, match=r"missing sections \['split'\]"):
        params.load("split", path)


def test_missing_key_is_named(params_file):
    raw = yaml.safe_load(params_file.read_text())
    del raw["train"]["wd"], raw["fetch"]["demo"]["seed"]
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"^train: missing keys \['wd'\]; params.yaml holds every key"):
        params.load("train", params_file)
    with pytest.raises(ParamsError, match=r"^fetch\.demo: missing keys \['seed'\]"):
        params.load("fetch", params_file)


def test_unknown_section_is_named(params_file):
    write(params_file, {"trian": {"lr": 0.1}})
    with pytest.raises(ParamsError, match="trian"):
        params.load("train", params_file)


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"^train: unknown keys \['learning_rate'\]"):
        parse("train", {"learning_rate": 0.1})


def test_unknown_nested_key_is_named():
    with pytest.raises(ParamsError, match=r"fetch\.demo: unknown keys \['colour'\]"):
        full("fetch", {"demo": {"colour": 1}})


@pytest.mark.parametrize("key, value", [
    ("epochs", "4"),        # string for int
    ("epochs", True),       # bool is not an int here
    ("epochs", 2.5),        # float for int
    ("lr", True),           # bool for float
    ("lr", "fast"),         # non-numeric string for float
])
def test_wrong_type_is_named(key, value):
    with pytest.raises(ParamsError, match=rf"^train\.{key}: "):
        full("train", {key: value})


def test_wrong_type_in_other_sections():
    with pytest.raises(ParamsError, match=r"^verify\.workers: "):
        full("verify", {"workers": True})
    with pytest.raises(ParamsError, match=r"^fetch\.classes: .*must be a list"):
        full("fetch", {"classes": "three"})
    with pytest.raises(ParamsError, match=r"^fetch\.source: 'bing' is not one of"):
        full("fetch", {"source": "bing"})


@pytest.mark.parametrize("lr", [-0.1, 0, 0.0, float("nan"), 100])
def test_lr_out_of_range(lr):
    with pytest.raises(ParamsError, match=r"^train\.lr: "):
        full("train", {"lr": lr})


def test_int_given_for_float_becomes_float():
    train = full("train", {"lr": 1})
    assert train.lr == 1.0 and isinstance(train.lr, float)


def test_yaml_exponent_string_is_coerced_to_float(params_file):
    text = params_file.read_text()
    params_file.write_text(text.replace("\n  lr: 0.01\n", "\n  lr: 1e-06\n", 1))
    assert yaml.safe_load(params_file.read_text())["train"]["lr"] == "1e-06"  # the PyYAML quirk
    lr = params.load("train", params_file).lr
    assert lr == 1e-6 and isinstance(lr, float)


@pytest.mark.parametrize("valid, test", [(0.5, 0.5), (0.6, 0.45), (0.98, 0.02)])
def test_split_shares_must_leave_training_images(valid, test):
    with pytest.raises(ParamsError, match=r"split\.valid_pct \+ split\.test_pct"):
        full("split", {"valid_pct": valid, "test_pct": test})


def test_split_shares_below_one_pass():
    assert full("split", {"valid_pct": 0.5, "test_pct": 0.49}).test_pct == 0.49


def test_unknown_arch_is_named():
    with pytest.raises(ParamsError, match=r"^train\.arch: unknown architecture 'resnet9'"):
        full("train", {"arch": "resnet9"})


def test_pretrained_accepts_bool_or_existing_file(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    assert full("train", {"pretrained": True}).pretrained is True
    assert full("train", {"pretrained": str(weights)}).pretrained == str(weights)
    with pytest.raises(ParamsError, match=r"^train\.pretrained: weights file .* not found"):
        full("train", {"pretrained": str(tmp_path / "nope.pth")})
    with pytest.raises(ParamsError, match=r"^train\.pretrained: "):
        full("train", {"pretrained": 1})


@pytest.mark.parametrize("classes, message", [
    ([], "empty"),
    (["three"], "one class"),
    (["three", "three"], "duplicate"),
    (["three", "../five"], "not a usable folder name"),
])
def test_bad_class_lists(classes, message):
    with pytest.raises(ParamsError, match=rf"^fetch\.classes: .*{message}"):
        full("fetch", {"classes": classes})


def test_demo_classes_must_be_digit_names():
    with pytest.raises(ParamsError, match=r"^fetch\.classes: \['grizzly'\] are not demo classes"):
        full("fetch", {"source": "demo", "classes": ["three", "grizzly"]})
    fetch = full("fetch", {"source": "files", "classes": ["grizzly", "black", "teddy"]})
    assert fetch.classes == ["grizzly", "black", "teddy"]


def test_query_needs_placeholder():
    with pytest.raises(ParamsError, match=r"^fetch\.query: "):
        full("fetch", {"source": "ddg", "classes": ["a", "b"], "query": "bears"})
    assert full("fetch", {"query": "{cls} bear"}).query == "{cls} bear"


@pytest.mark.parametrize("query", ["{cls} {size}", "{cls} {0}", "{cls}}"])
def test_query_with_other_placeholders_is_named(query):
    """from_ddg calls query.format(cls=...): anything else in braces crashes there, after validation."""
    with pytest.raises(ParamsError, match=r"^fetch\.query: "):
        full("fetch", {"source": "ddg", "classes": ["a", "b"], "query": query})


def test_nested_demo_range_is_named():
    with pytest.raises(ParamsError, match=r"^fetch\.demo\.mislabeled: 0\.9 is out of range"):
        full("fetch", {"demo": {"mislabeled": 0.9}})


def test_section_must_be_a_mapping():
    with pytest.raises(ParamsError, match=r"^train: expected a mapping"):
        parse("train", [1, 2])


def retrain(params_file: Path, values: dict):
    write(params_file, {"retrain": values})
    return params.load("retrain", params_file)


def test_retrain_unknown_key_is_named(params_file):
    with pytest.raises(ParamsError, match=r"^retrain: unknown keys \['epoch'\]"):
        retrain(params_file, {"epoch": 8})


def test_retrain_keys_replace_train_and_null_inherits(params_file):
    train = params.load("train", params_file)
    assert retrain(params_file, {}) == train  # every retrain key null in the project
    final = retrain(params_file, {"epochs": 3, "lr": None})
    assert final.epochs == 3 and final.lr == train.lr and final.arch == train.arch and final.seed == train.seed


def test_retrain_values_are_validated_and_named(params_file):
    with pytest.raises(ParamsError, match=r"^retrain\.epochs: "):
        retrain(params_file, {"epochs": "8"})
    with pytest.raises(ParamsError, match=r"^retrain\.lr: "):
        retrain(params_file, {"epochs": None, "lr": -1.0})


def declared_keys(cls: type, prefix: str, nested: bool = True) -> dict[str, str]:
    """dotted key -> meaning of every field; a nested section's fields too (a plain mapping is one key)."""
    keys = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keys[f"{prefix}{f.name}"] = f.metadata.get("meaning", "")
        if nested and dataclasses.is_dataclass(hints[f.name]):
            keys.update(declared_keys(hints[f.name], f"{prefix}{f.name}."))
    return keys


def yaml_keys(tree: dict, declared: dict[str, str], prefix: str) -> set[str]:
    """dotted keys of params.yaml, descending only into mappings the code declares as sections."""
    keys = set()
    for k, v in tree.items():
        name = f"{prefix}{k}"
        keys.add(name)
        if isinstance(v, dict) and any(d.startswith(f"{name}.") for d in declared):
            keys |= yaml_keys(v, declared, f"{name}.")
    return keys


def test_params_yaml_and_the_declarations_hold_the_same_keys():
    """A key in params.yaml without a declared meaning, or a declared key params.yaml lacks, is named."""
    declared = {}
    for section, cls in params.SECTIONS.items():
        # retrain's keys are train's, each null or a whole value (a null `diagnose` inherits the mapping)
        declared.update(declared_keys(cls, f"{section}.", nested=section != "retrain"))
    assert [k for k, meaning in declared.items() if not meaning.strip()] == [], "declared without a meaning"
    in_yaml = yaml_keys(PROJECT, declared, "")
    sections = set(params.SECTIONS)
    assert sorted(in_yaml - set(declared) - sections) == [], "in params.yaml, not declared in bearid/params.py"
    assert sorted(set(declared) - in_yaml) == [], "declared in bearid/params.py, missing from params.yaml"


@pytest.mark.parametrize("value", ["lots", "Estimate", -1, 2.5, True])
def test_clean_max_removed_is_estimate_or_a_count(value):
    with pytest.raises(ParamsError, match=r"^clean\.max_removed: "):
        full("clean", {"max_removed": value})


def test_clean_max_removed_takes_a_count():
    assert full("clean", {"max_removed": 12}).max_removed == 12
