# `make run`: set up and run the pipeline on the offline demo.
# `make test`: set up and run the test suite.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup browser run test review clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Browser tests (review page, plots page) drive Debian's Chromium with Playwright.
browser: $(CHROMIUM)

$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "make: Chromium missing: run 'sudo apt-get install -y chromium' first" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

run: setup
	dvc repro

test: setup browser
	python -m pytest

# Review the cleaning candidates in the browser (http://127.0.0.1:8001/), then `dvc repro`.
review: setup
	$(BIN)/bearid review

clean-venv:
	rm -rf $(VENV)
