# feedwatch: the entry points. Every target creates the virtualenv it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_VENV := .venv-bench
TOOLS_VENV := .venv-tools
UV_VERSION := 0.13.10

.PHONY: run demo test lint bench eval check clean venv lock

# Installs come from the lock files in requirements/ (every package, direct and transitive,
# pinned to one version with its hashes); pip needs nothing else. feedwatch itself is installed
# without its dependencies and without build isolation, so the build backend is locked too.
$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
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

## eval: quality on real news (../shared/corpora/real-news; skipped when absent): stories, rules
eval: $(STAMP)
	$(BIN)/python eval/stories.py --json eval/results/stories.json
	$(BIN)/python eval/rules.py --json eval/results/rules.json

## bench: speed figures beside baselines measured in the same run (bench/results/*.json)
$(BENCH_VENV)/.installed: requirements/bench.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bench.txt
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py

## lock: re-resolve requirements/*.txt from pyproject.toml's ranges (newest versions that fit)
LOCK := $(TOOLS_VENV)/bin/uv pip compile pyproject.toml requirements/build.in --universal \
	--python-version 3.11 --generate-hashes --upgrade --quiet
lock:
	test -x $(TOOLS_VENV)/bin/uv || { $(PYTHON) -m venv $(TOOLS_VENV) && \
		$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	$(LOCK) -o requirements/main.txt
	$(LOCK) --extra dev -o requirements/dev.txt
	$(LOCK) --extra dev --extra bench -o requirements/bench.txt

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(TOOLS_VENV) .feedwatch .pytest_cache .mypy_cache .ruff_cache *.egg-info
