# normlab: `make repro` trains and evaluates the default experiment; `make test` runs the suite.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Stage commands call `python`: the venv's, whether or not the user activated it.
export PATH := $(abspath $(BIN)):$(PATH)
STAMP   := $(VENV)/.installed

.PHONY: repro test install clean study report

# The venv is rebuilt only when the pinned dependencies change.
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# Studies (studies/default.yaml): ARGS picks them, e.g. ARGS="--study norms --profile tiny";
# give `report` the same ARGS as `study`. JOBS experiments run at once.
ARGS    ?=
JOBS    ?= 1
study: $(STAMP)
	$(BIN)/python -m normlab.study run --jobs $(JOBS) $(ARGS)

report: $(STAMP)
	$(BIN)/python -m normlab.report $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV)
