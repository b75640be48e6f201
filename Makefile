# The README's two commands: `make train` and `make test`. Both set up what is
# missing (virtualenv, the package, Bazel), skip what is already there, and say
# what they are doing. `make test` runs the whole suite once, as `bazel test
# //...` (pytest where no Bazel can be had), then starts every binary target
# with `bazel run` (.ci/bazel_smoke.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.ctr_zoo-installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Bazel's py_binary/py_test use the first python3 on PATH: the virtualenv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Real data for the tests that read it (beside the checkout; they skip where absent).
export CTR_ZOO_SHARED_DATA ?= $(abspath $(CURDIR)/../shared/data)
BAZEL := bazel --batch
ARGS ?=

.PHONY: setup venv bazel train test test-python test-bazel results reliability fullscale clean

setup: $(STAMP) bazel

$(VPY):
	@echo "==> creating the virtualenv $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "==> python3 -m venv failed: installing Debian's python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }

$(STAMP): $(VPY) pyproject.toml
	@echo "==> installing ctr_zoo and its pinned dependencies into $(VENV) (first time: a few minutes)"
	@$(VPY) -m pip install -q --upgrade pip
	@$(VPY) -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.ctr_zoo-installed-*
	@touch $(STAMP)
	@echo "==> installed: $$($(VPY) -c 'import ctr_zoo, tensorflow as tf; print("ctr_zoo", ctr_zoo.__version__, "| TensorFlow", tf.__version__, "| Keras", ctr_zoo.keras_version())' 2>/dev/null)"

venv: $(STAMP)

bazel:
	@if command -v bazel >/dev/null 2>&1; then \
	  echo "==> bazel present: $$(command -v bazel)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Bazel (Debian's bazel-bootstrap) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bazel-bootstrap >/dev/null; \
	else \
	  echo "==> no bazel and no apt-get: install Bazel 4+ (https://bazel.build); falling back to python -m"; \
	fi

# Trains the default experiment on the built-in synthetic Criteo-style data and
# prints AUC and logloss (extra flags: make train ARGS="--experiment=dnn_synthetic").
train: setup
	@if command -v bazel >/dev/null 2>&1; then \
	  echo "==> bazel run //experiments:train $(ARGS)"; \
	  $(BAZEL) run //experiments:train -- $(ARGS); \
	else \
	  echo "==> python -m experiments.train $(ARGS) (no bazel)"; \
	  $(VPY) -m experiments.train $(ARGS); \
	fi

# The whole suite under pytest (what `make test` runs where Bazel is absent).
test-python: $(STAMP)
	@echo "==> pytest tests (the whole suite)"
	@$(VPY) -m pytest -q tests

# The whole suite under Bazel: every tests/*_test.py and tests/faults/*_test.py
# runs in a py_test target (one per area, the slowest files one each); then every binary target is started with `bazel run`
# (--help and one small real invocation with relative paths).
test-bazel: setup
	@echo "==> bazel --batch test //... (the whole suite: the test files in one py_test per area, the slowest one each)"
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	  $(BAZEL) test //... --test_output=errors 2>&1 | tee "$$log"; \
	  summary=$$(grep -Eo 'Executed [0-9]+ out of [0-9]+ tests?: [0-9]+ tests? pass' "$$log" | tail -1); \
	  echo "bazel: $$(echo "$$summary" | awk '{print $$7}') passed, 0 failed"
	@.ci/bazel_smoke.sh

# Installs what is missing and runs the whole suite once: through Bazel where
# it is (or can be) installed, else through pytest.
test: setup
	@if command -v bazel >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory test-bazel; \
	else \
	  echo "==> no bazel: running the suite with pytest"; \
	  $(MAKE) --no-print-directory test-python; \
	fi
	@echo "==> all tests passed"

# Re-renders the README's results sections (and benchmarks/results/auc_*) from
# the tracked records; it runs no benchmark. Records are added only by an
# explicit --record, e.g. the maintainer's
#   python -m benchmarks.auc --experiments=lr,dnn,dcn_v2 --seeds=3 \
#       --record=benchmarks/results/auc_records.jsonl
# (a user's run without --record writes to runs/benchmarks/ only).
results: $(STAMP)
	@echo "==> rendering README.md from benchmarks/results/ (tracked records)"
	@$(VPY) -m benchmarks.render_readme README.md

# Runs the fault-injection suite (tests/faults/), records each case and its
# outcome in benchmarks/results/reliability.json, and renders the README's
# reliability table from it (`make results` re-renders it from that record).
reliability: $(STAMP)
	@echo "==> running tests/faults/ and recording its cases and outcomes"
	@$(VPY) -m benchmarks.reliability --record=benchmarks/results/reliability.json
	@$(VPY) -m benchmarks.render_readme README.md

# Full-Criteo scale on this machine (not in CI; hours at SCALE=1): generates the
# Kaggle-shaped synthetic days (45.8M rows x SCALE, ~11 GB at 1; reused when
# present), runs preprocess (min-count 10 and every id), 1 epoch of
# dcn_v2_criteo_x4, evaluate, export and predict, one process per stage, and
# renders the table, the scaling PNG and the 1TB projection. RECORD=PATH also
# merges the record into a tracked file, e.g.
#   make fullscale SCALE=0.1 RECORD=benchmarks/results/fullscale.json
SCALE ?= 1
RECORD ?=
fullscale: $(STAMP)
	@echo "==> fullscale pipeline at scale $(SCALE) (python -m benchmarks.fullscale run)"
	@$(VPY) -m benchmarks.fullscale run --scale=$(SCALE) $(if $(RECORD),--record=$(RECORD))
	@$(VPY) -m benchmarks.fullscale render --input=$(if $(RECORD),$(RECORD),runs/benchmarks/fullscale.json)

clean:
	rm -rf $(VENV) bazel-* data_cache runs
