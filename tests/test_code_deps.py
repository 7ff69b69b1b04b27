"""dvc.yaml declares, for every stage, exactly the library modules its script reaches through imports.

A module a stage imports but does not declare can change the stage's output while `dvc status` stays
clean; a declared module it never imports reruns the stage for nothing. Imports are followed statically
(ast), transitively, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bearid"

# Modules whose edits cannot change any stage's output; they are neither required in deps nor followed.
ALLOWED = {
    "bearid/__init__.py": "runs on every `import bearid.x`: a version string and a warnings filter",
    "bearid/errors.py": "exception classes only",
    "bearid/runner.py": "turns a user error into one line and exit status 2",
    "bearid/progress.py": "log lines and progress bars on stderr",
    # Parsing and validation only: every value lives in params.yaml, which DVC tracks key by key, and a
    # value it accepts reaches the stage as params.yaml holds it (a null retrain key: train's value).
    "bearid/params.py": "reads params.yaml into typed, validated objects",
}


def imported_modules(path: Path) -> set[str]:
    """Files of the package that `path` imports directly (`from .x import`, `from bearid import x`, ...)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = path.relative_to(ROOT).parent.parts  # ("bearid",) inside the package, ("stages",) for scripts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing file's package
                base = ".".join(here[: len(here) - node.level + 1] + ((base,) if base else ()))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and (ROOT / PACKAGE / f"{parts[1]}.py").is_file():
                found.add(f"{PACKAGE}/{parts[1]}.py")
    return found


def reached(script: Path) -> set[str]:
    """Every package module the script reaches, transitively, stopping at the allow-listed ones."""
    todo, seen = [script], set()
    while todo:
        for module in imported_modules(todo.pop()) - seen - set(ALLOWED):
            seen.add(module)
            todo.append(ROOT / module)
    return seen


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_exactly_the_modules_it_imports(name):
    stage = STAGES[name]
    module = stage["cmd"].removeprefix("python -m ")
    script = f"{module.replace('.', '/')}.py"
    deps = {d for d in stage["deps"] if isinstance(d, str)}
    assert script in deps, f"stage {name}: its script {script} is not in its deps"
    declared = {d for d in deps if d.startswith(f"{PACKAGE}/")}
    needed = reached(ROOT / script)
    assert not needed - declared, f"stage {name}: imports {sorted(needed - declared)}, not in its deps in dvc.yaml"
    assert not declared - needed, f"stage {name}: declares {sorted(declared - needed)}, which it never imports"


def test_the_walk_follows_relative_and_package_imports(tmp_path):
    """The rules the derivation relies on, on the real package: a stage script's `from bearid import x`,
    a module's `from .x import` and `from . import x`, and imports inside functions."""
    assert "bearid/params.py" in imported_modules(ROOT / "stages/train.py")
    assert "bearid/plots.py" in imported_modules(ROOT / "bearid/training.py")
    assert "bearid/diagnosis.py" in imported_modules(ROOT / "bearid/training.py")  # from . import diagnosis
    assert "bearid/archs.py" in imported_modules(ROOT / "bearid/params.py")  # imported inside a method
    assert "bearid/archs.py" in reached(ROOT / "stages/train.py")  # through training -> export -> archs
