# normlab: `make repro` trains and evaluates the default experiment; `make test` runs the suite.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Stage commands call `python`: the venv's, whether or not the user activated it.
export PATH := $(abspath $(BIN)):$(PATH)
STAMP   := $(VENV)/.installed

.PHONY: repro test bench install clean

# The venv is rebuilt only when the pinned dependencies change.
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest

# Seed-style loop vs normlab's engine, same model and steps (not part of `make test`).
# Extra options: make bench BENCH_ARGS="--device cuda --steps 400 --stage"
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV)
