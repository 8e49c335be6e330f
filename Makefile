# normlab: `make repro` trains and evaluates the default experiment; `make test` runs the suite.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Stage commands call `python`: the venv's, whether or not the user activated it.
export PATH := $(abspath $(BIN)):$(PATH)
STAMP   := $(VENV)/.installed
# `dvc plots show` page with vega inlined, so charts draw offline (.dvc/config.local names it).
TEMPLATE := .dvc/plots_template.html

.PHONY: repro test test-slow lint bench install clean study plan status show verify report proxy

# The venv is rebuilt only when the pinned dependencies change.
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

# vega, vega-lite and vega-embed from the npm registry (pinned in package-lock.json), inlined by
# scripts/plots_template.py. Without npm or the registry, the template is DVC's CDN page (a warning).
# It is named in .dvc/config.local (this checkout's DVC config, never committed), so a clone that
# has not run `make install` gets DVC's default page rather than an error about a missing file.
$(TEMPLATE): package.json package-lock.json .npmrc scripts/plots_template.py | $(STAMP)
	@if ! command -v npm >/dev/null; then echo "warning: npm not found: dvc plots show will load vega from a CDN"; \
	elif ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; then \
	  echo "warning: npm ci failed: dvc plots show will load vega from a CDN"; fi
	$(PY) scripts/plots_template.py
	$(BIN)/dvc config --local plots.html_template plots_template.html

install: $(STAMP) $(TEMPLATE)

repro: $(STAMP) $(TEMPLATE)
	$(BIN)/dvc repro

# Studies (studies/default.yaml): ARGS picks them, e.g. ARGS="--study norms --profile tiny";
# give `plan` and `report` the same ARGS as `study`. JOBS runs train at once (worker processes).
ARGS    ?=
JOBS    ?= 1
# The CIFAR-10 proxy's source (shared/ beside the repo) and where `make proxy` puts it.
PROXY_SRC ?= ../shared/datasets/cifar-10-proxy
PROXY     := data/mirror/cifar10-proxy/cifar-10-binary-proxy.tar.gz
SHARED_DATA := $(abspath $(wildcard ../shared/datasets))

# Studies need the CIFAR-10 proxy (`cifar`, seeds' s004): built first, once, wherever its source
# is present, so a fresh clone runs every study with no hand step.
# Fashion-MNIST offline: the shared mirror beside the repo, unless NORMLAB_DATA_MIRROR names one.
study: $(STAMP) $(if $(wildcard $(PROXY_SRC)/build.py),$(PROXY))
	NORMLAB_DATA_MIRROR=$${NORMLAB_DATA_MIRROR:-$(SHARED_DATA)} \
	  $(BIN)/python -m normlab.analysis.study run --jobs $(JOBS) $(ARGS)

plan: $(STAMP)
	$(BIN)/python -m normlab.analysis.study plan --jobs $(JOBS) $(ARGS)
	@# each registered (claims-v2, -v3) test on these studies: its n and its runs done
	$(BIN)/python -m normlab.analysis.claims.tally $(ARGS)

# What `make study` shows, from another terminal or any machine sharing this checkout: every
# runner's runs done / total and ETA, and each running run (.normlab/progress/). FOLLOW=1 keeps
# it up to date (as `make study` does) until Ctrl-C.
status: $(STAMP)
	@$(BIN)/python -m normlab.analysis.study status $(if $(FOLLOW),--follow)

# One record's numbers and test-accuracy curve, and its history in DVCLive's layout under
# .normlab/dvclive/ for `dvc plots`: make show RUN=results/runs/norms/bn/s0.json
show: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make show RUN=results/runs/<study>/<variant>/s<seed>.json"; exit 2; }
	@$(BIN)/python -m normlab.analysis.study show $(RUN)

# Retrain the run behind one record and compare: make verify RUN=results/runs/norms/bn/s0.json
verify: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make verify RUN=results/runs/<study>/<variant>/s<seed>.json"; exit 2; }
	$(BIN)/python -m normlab.analysis.study verify $(RUN)

# results/README.md, figures and seed bands from the run records alone (retrains nothing), and
# results/<name>/ for each other studies/<name>.yaml with records; with ARGS, that one report
# (a profile or another study file writes results/<profile or file name>/).
report: $(STAMP)
	$(BIN)/python -m normlab.analysis.report $(ARGS)

# The CIFAR-10 PROXY (dataset cifar10-proxy: JPEG copies, never reported as CIFAR-10) from
# PROXY_SRC into data/mirror/cifar10-proxy/ (gitignored), where normlab.fetch finds it: once per
# clone, before any cifar10-proxy run (`cifar`, s004). Built in a .part folder and
# moved into place whole, so an interrupted build leaves nothing that passes for the proxy.
proxy: $(PROXY)

$(PROXY): $(PROXY_SRC)/build.py $(PROXY_SRC)/cifar10-jpeg-proxy.npz | $(STAMP)
	rm -rf $(@D).part
	$(BIN)/python $(PROXY_SRC)/build.py $(@D).part
	mkdir -p $(@D) && mv $(@D).part/$(@F) $@ && rm -rf $(@D).part

# `make test` leaves out the tests marked slow; `make test-slow` runs just those (CI runs both).
test: $(STAMP) $(TEMPLATE)
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(STAMP) $(TEMPLATE)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Seed-style loop vs normlab's engine, same model and steps (not part of `make test`).
# Extra options: make bench BENCH_ARGS="--device cuda --steps 400 --stage"
# Then images/s per run for K = 1, 3, 12 packed runs and the projected norms-study time
# (benchmarks/packed.py; PACKED_ARGS="--device cuda" on a GPU).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/packed.py $(PACKED_ARGS)

clean:
	rm -rf $(VENV) node_modules $(TEMPLATE)
