# infocam-exp: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pair that installs offline on the development machines; override for others.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run test test-all test-fast lint table-mi bench-mi clean-outputs

help:  ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the project (editable) with its dev tools

run: setup  ## Run the main job on its embedded default (synthetic MI, one setting, < 1 min)
	$(PY) -m infocam_exp

test: setup  ## Run the test suite (fast and slow tests; GPU tests are skipped without a GPU)
	$(PY) -m pytest -q -m "not gpu"

test-fast: setup  ## Run only the fast tests
	$(PY) -m pytest -q -m "not slow and not gpu"

lint: setup  ## ruff on the package, scripts and tests
	$(VENV)/bin/ruff check infocam_exp scripts tests

table-mi: setup  ## Synthetic MI table (48 jobs, resumable) -> outputs/tables/mi_synthetic.{md,csv,png}
	status=0; $(PY) -m infocam_exp +table=mi_synthetic $(ARGS) || status=$$?; \
	$(PY) -m infocam_exp.tables mi_synthetic $(ARGS) || status=1; exit $$status

bench-mi: setup  ## Time the full synthetic MI grid in a fresh output folder (scripts/bench_mi_table.py)
	$(PY) scripts/bench_mi_table.py

clean-outputs:  ## Delete generated outputs (keeps outputs/.gitkeep)
	find outputs -mindepth 1 ! -name .gitkeep -delete
