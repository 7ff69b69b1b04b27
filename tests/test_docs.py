"""The docs check: every shell command in README.md and docs/*.md either runs, or is listed here with why not.

Commands live in ```sh blocks, one a line, with an optional `# comment`. A comment ending in
a tag, `[long]`, `[network]`, `[server]` or `[example]`, marks a command that the page shows
but this check does not run; NOT_RUN lists each such command, page by page, with its tag, and
TAGS says why.
Every other command runs, in page order, in the page's own copy of the fully run tiny project
(conftest's `project`), and must exit 0.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, copy_repo, dvc_env

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TAGS = {
    "long": "minutes of set-up or training; `make test` and CI run the same through tests/test_pipeline.py, "
            "test_experiments.py, test_remote.py and the benchmarks",
    "network": "needs the internet: a web image search or a remote store",
    "server": "starts a server that runs until stopped; tests/test_serve.py and tests/test_review.py drive them",
    "example": "names a file, folder, repository or experiment that the reader supplies",
}
NOT_RUN = {  # page -> the commands it shows but this check does not run, each with its tag
    "README.md": {
        "make run": "long",
        "make test": "long",
        "make review": "server",
        "dvc exp run -S train.epochs=6": "long",
        "dvc exp run -S fetch.source=files -S 'fetch.classes=[grizzly,black,teddy]'": "network",
        "bearid serve": "server",
    },
    "docs/benchmarks.md": {f"python benchmarks/{name}.py": "long" for name in
                           ("pipeline", "train", "cleaning", "acquisition", "serve", "dvc_scale", "sgd",
                            "ood_pooling")},
    "docs/cleaning-policy.md": {
        "python benchmarks/cleaning.py --colours varied --noise 0 --out-of-place 0 --replicates 1": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1": "long",
        "python benchmarks/cleaning.py --noise 0.2 --replicates 1": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --set crossval.epochs=12": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --set fetch.demo.img_size=128 "
        "--set verify.max_size=128 --set train.img_size=128 --set crossval.img_size=128 "
        "--set train.arch=efficientnet_lite0 --set train.pretrained=true --set train.lr=0.002 --set crossval.lr=0.002 "
        "--set interpret.ood_method=embedding": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --set train.arch=efficientnet_lite0 "
        "--set train.pretrained=true --set train.lr=0.002 --set crossval.lr=0.002": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --preset real-photos": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --preset real-photos "
        "--set fetch.demo.seed=1 --set split.seed=43 --set train.seed=43": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --preset real-photos "
        "--set crossval.epochs=3 --set crossval.lr=0.002": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0 --out-of-place 0 --replicates 1 "
        "--preset real-photos": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0 --out-of-place 0 --replicates 1 "
        "--preset real-photos --set fetch.demo.seed=1 --set split.seed=43 --set train.seed=43": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 1 --preset real-photos "
        "--set fetch.demo.seed=2 --set split.seed=44 --set train.seed=44": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 3 --preset real-photos "
        "--set train.freeze_epochs=1 --set train.epochs=6 --set train.lr=0.02 --set train.aug.do_flip=false": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --replicates 3 --preset real-photos "
        "--set train.freeze_epochs=1 --set train.epochs=6 --set train.lr=0.02 --set train.aug.do_flip=false "
        "--train-seeds 4 --keep": "long",
    },
    "docs/cleaning.md": {
        "make review": "server",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --out-of-place 0.03": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0 --out-of-place 0": "long",
        "python benchmarks/cleaning.py --noise 0 --out-of-place 0": "long",
        "python benchmarks/cleaning.py --colours varied --noise 0.08 --preset real-photos": "long",
    },
    "docs/experiments.md": {
        "dvc exp run -n lr-high -S train.lr=1e-2": "long",
        "dvc exp run --queue -S 'train.lr=1e-4,3e-3,1e-2' -S 'train.epochs=2,4'": "long",
        "dvc queue start": "long",
        "dvc queue logs <exp>": "example",
        "dvc metrics diff lr-low lr-high": "long",  # these need the experiments above
        "dvc plots diff lr-low lr-high": "long",
        "dvc exp apply lr-high": "long",
        'git add -A && git commit -m "lr 1e-2"': "long",
        "dvc exp branch lr-high lr-high-branch": "long",
        "dvc remote add -d storage /mnt/shared/bearid-dvc": "example",
        "dvc push": "network",  # the default remote is the SSH example by then
        'git add .dvc/config && git commit -m "DVC remote" && git push': "network",
        "git clone <repo> && cd bearid && make setup": "example",
        "dvc pull": "network",
        "python benchmarks/dvc_scale.py": "long",
    },
    "docs/production.md": {
        "bearid predict --json --top-k 2 photo.jpg other.png": "example",
        "bearid serve": "server",
        "curl -F file=@data/images/three/069db9952200549f.jpg http://127.0.0.1:8000/predict": "server",
        "curl -F file=@data/images/three/069db9952200549f.jpg 'http://127.0.0.1:8000/predict?top_k=1'": "server",
        "curl http://127.0.0.1:8000/health": "server",
        "curl -F file=@README.md http://127.0.0.1:8000/predict": "server",
    },
    "docs/development.md": {
        "python3 -m venv .venv": "long",
        ".venv/bin/python -m pip install pip==26.3": "long",
        ".venv/bin/python -m pip install --require-hashes -r requirements.lock": "long",
        ".venv/bin/python -m pip install --no-deps --no-build-isolation -e .": "long",
        "make lock": "network",
        "make test": "long",
        "make test-quick": "long",
    },
    "docs/reproducibility.md": {
        "git clone <repo> && cd <repo>": "example",
        "dvc remote add -d storage <url>": "example",
        "dvc pull": "network",
        'git tag -a classifier@v0.1.0 -m "classifier v0.1.0" && git push --tags': "network",
        "dvc artifacts get <repo-url> classifier -o model": "example",
        "bearid predict --model model some.jpg": "example",
    },
    "docs/serving.md": {
        "bearid serve --model data/retrain --host 127.0.0.1 --port 8000": "server",
        "python benchmarks/serve.py --model data/train --requests 1000 --repeat 100 --threads 1":
            "long",
    },
    "docs/transfer-learning.md": {
        "dvc repro": "network",
        "python benchmarks/transfer.py --threads 1 --sizes 64 128 --per-class 30 0": "long",
    },
    "docs/training.md": {
        "dvc exp run -S train.lr=10": "long",
        "dvc exp run -S train.lr=1e-6 -S train.lr_min=1e-7": "long",
        "dvc exp run -S train.epochs=1": "long",
    },
}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
COMMENT = re.compile(r"\s+#\s.*$|\s+#$")
TAG = re.compile(r"\[(" + "|".join(TAGS) + r")\]\s*$")
COMMAND_WORDS = ("dvc ", "bearid ", "python ", "make ", "git ", "curl ", "pip ", ".venv/")


def commands(page: Path) -> list[tuple[str, str | None]]:
    """(command, tag or None) for every command line of the page's ```sh blocks, in order."""
    found = []
    for lang, body in FENCE.findall(page.read_text()):
        if lang != "sh":
            continue
        for line in body.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tag = TAG.search(line)
            command = COMMENT.sub("", line)
            found.append((command, tag.group(1) if tag else None))
    return found


def runnable(page: Path) -> list[str]:
    return [c for c, tag in commands(page) if tag is None]


def test_every_command_is_run_or_listed_with_its_reason():
    tagged = {}
    for page in PAGES:
        name = page.relative_to(ROOT).as_posix()
        listed = NOT_RUN.get(name, {})
        for command, tag in commands(page):
            if tag is None:
                assert command not in listed, f"{name}: {command!r} is listed as not run but has no tag"
            else:
                assert listed.get(command) == tag, f"{name}: {command!r} tagged [{tag}], listed {listed.get(command)}"
                tagged.setdefault(name, {})[command] = tag
    assert tagged == NOT_RUN  # no stale entry
    assert {tag for listed in NOT_RUN.values() for tag in listed.values()} <= set(TAGS)


def test_no_command_hides_outside_sh_blocks():
    """Indented blocks and other fences hold pictures, output and config, never a command to type."""
    for page in PAGES:
        text = page.read_text()
        other = [body for lang, body in FENCE.findall(text) if lang != "sh"]
        indented = re.findall(r"(?:^|\n\n)((?: {4}.*\n?)+)", FENCE.sub("", text))
        for block in other + indented:
            for line in block.splitlines():
                assert not line.strip().startswith(COMMAND_WORDS), f"{page.name}: command outside ```sh: {line!r}"


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=lambda p: p.name)
def test_page_commands_run_on_the_tiny_project(page: Path, project: Path, tmp_path: Path):
    repo = copy_repo(project, tmp_path / "repo")
    for command in runnable(page):
        proc = subprocess.run(["bash", "-c", command], cwd=repo, env=dvc_env(), capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{page.name}: {command!r} failed:\n{proc.stdout}\n{proc.stderr}"


def test_readme_layout_names_every_module():
    layout = page_section(ROOT / "README.md", "## Layout")
    modules = {p.stem for p in (ROOT / "bearid").glob("*.py") if p.stem != "__init__"}
    named = set(re.findall(r"\b(\w+)\b", layout))
    assert modules - named == set(), "add them to README.md's Layout"


def page_section(page: Path, heading: str) -> str:
    """The text under `heading`, up to the next heading of the same level."""
    text = page.read_text()
    start = text.index(heading + "\n") + len(heading)
    level = heading.split(" ")[0] + " "
    end = text.find("\n" + level, start)
    return text[start:end if end != -1 else len(text)]
