# feedwatch: the entry points. Every target creates the virtualenv it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_VENV := .venv-bench

.PHONY: run demo test lint bench check clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: the daemon in the foreground with ./feedwatch.yaml on an embedded Redis (Ctrl-C stops it)
run: $(STAMP)
	$(BIN)/feedwatch run --config feedwatch.yaml

## demo: the same pipeline with no network: sample feeds served on 127.0.0.1
demo: $(STAMP)
	$(BIN)/python demo/run.py

## test: the whole test suite (real Redis, real HTTP and SMTP servers on 127.0.0.1)
test: $(STAMP)
	$(BIN)/pytest

## check: validate feedwatch.yaml and the rules, run the rules' examples
check: $(STAMP)
	$(BIN)/feedwatch check --config feedwatch.yaml

## lint: ruff and mypy (strict on daemon/ and alerts/)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: speed figures beside baselines measured in the same run (bench/results/*.json)
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e '.[dev]' reader sgmllib3k requests
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .feedwatch .pytest_cache .mypy_cache .ruff_cache *.egg-info
