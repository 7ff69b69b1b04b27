# `make run`: set up and run the pipeline on the offline demo.
# `make test`: set up, lint, and run the whole test suite (what CI runs).
# `make test-quick`: the tests that need neither a browser nor a pipeline run (docs/development.md).
# `make lock`: regenerate requirements.lock from pyproject.toml, keeping every pin it can.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup browser run test test-quick lint lock review clean-venv

setup: $(VENV)/.installed

# Every package at the exact version and hash of requirements.lock, then the project itself.
$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	# venv's bundled pip (23.x) rejects hash-checked installs whose dependencies ask for extras
	# (uvicorn[standard], smart-open[http]) once a newer release is published; pip 26.3 does not.
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Browser tests (review page, plots page) drive Debian's Chromium with Playwright.
browser: $(CHROMIUM)

$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "make: Chromium missing: run 'sudo apt-get install -y chromium' first" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

run: setup
	dvc repro

lint: setup
	ruff check .

test: setup browser lint
	python -m pytest

test-quick: setup lint
	python -m pytest -m "not browser and not slow"

lock: setup
	uv pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11.7 --no-header -o requirements.lock

# Review the cleaning candidates in the browser (http://127.0.0.1:8001/), then `dvc repro`.
review: setup
	$(BIN)/bearid review

clean-venv:
	rm -rf $(VENV)
