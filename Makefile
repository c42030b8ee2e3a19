# infocam-exp: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pair that installs offline on the development machines; override for others.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint bench-mi report clean-outputs

help:  ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m infocam_exp.evaluate --warm-up
	INFOCAM_BOX_KERNEL=numba $(PY) -m infocam_exp.evaluate --warm-up
	touch $(STAMP)

setup: $(STAMP)  ## Create .venv, install the project (editable) with its dev tools, build the box sweep (C and numba)

run: setup  ## Run the main job on its embedded default (synthetic MI, one setting, about 20 s)
	$(PY) -m infocam_exp

test: setup  ## Run the test suite (fast and slow tests; GPU tests are skipped without a GPU)
	$(PY) -m pytest -q -m "not gpu"

test-fast: setup  ## Run only the fast tests
	$(PY) -m pytest -q -m "not slow and not gpu"

lint: setup  ## ruff on the package, scripts and tests
	$(VENV)/bin/ruff check infocam_exp scripts tests

# make table-<id>: run the table's sweep (resumable: finished jobs are skipped), then aggregate it
# into outputs/tables/<table>.{md,csv,png}. Exits non-zero if any job of the grid is missing or
# failed (the sweep's status, and `tables --strict`; without --strict the table command reports
# the rows it has and exits 0). ARGS="..." passes overrides to both steps (e.g. ARGS="paths.data_dir=/datasets").
TABLE_mi := mi_synthetic
TABLE_mi-bench := mi_benchmark
TABLE_mnist := mnist
TABLE_cifar-lt := cifar_lt
TABLE_cub-pc := cub_pc
TABLE_wsol-synthetic := wsol_synthetic
TABLE_wsol-cub := wsol_cub
TABLE_wsol-tiny := wsol_tiny
TABLES := $(patsubst TABLE_%,table-%,$(filter TABLE_%,$(.VARIABLES)))

table-mi: ## Synthetic MI grid (48 jobs, about 6 min on 2 CPU cores)
table-mi-bench: ## MI-estimator benchmark: 7 tasks x 2 sizes x 10 seeds (140 jobs, 8 estimators each; two processes, about 25 min on 2 cores)
table-mnist: ## PC-softmax vs CE on imbalanced MNIST / Fashion-MNIST (18 jobs, about 1.5 min each on 2 CPU cores)
table-cifar-lt: ## Long-tailed CIFAR-10/100, ResNet-32 (18 GPU jobs)
table-cub-pc: ## CUB-200-2011 classification, Inception-V3 (18 jobs)
table-wsol-synthetic: ## CAM vs infoCAM on the embedded WSOL benchmark (6 jobs, about 5.5 min each on 2 CPU cores)
table-wsol-cub: ## WSOL on CUB-200-2011: 4 backbones x CAM/infoCAM (GPU jobs)
table-wsol-tiny: ## WSOL on Tiny-ImageNet: 4 backbones x CAM/infoCAM (GPU jobs)
# the benchmark's seeds in two processes (one per core); each writes its own jobs' folders
table-mi-bench: setup
	status=0; \
	$(PY) -m infocam_exp +table=mi_benchmark seed=0,2,4,6,8 $(ARGS) > /dev/null & p1=$$!; \
	$(PY) -m infocam_exp +table=mi_benchmark seed=1,3,5,7,9 $(ARGS) > /dev/null || status=$$?; \
	wait $$p1 || status=$$?; \
	$(PY) -m infocam_exp.tables --strict mi_benchmark $(ARGS) || status=1; exit $$status
$(filter-out table-mi-bench,$(TABLES)): table-%: setup
	@test -n "$(TABLE_$*)" || { echo "unknown table $*"; exit 2; }
	status=0; $(PY) -m infocam_exp +table=$(TABLE_$*) $(ARGS) || status=$$?; \
	$(PY) -m infocam_exp.tables --strict $(TABLE_$*) $(ARGS) || status=1; exit $$status

report: setup  ## One page of every result built so far: outputs/report/index.html (open it from disk)
	$(PY) -m infocam_exp.report

# make fetch-<name>: download a dataset from its publisher (size and checksum checked, resumable,
# a no-op when it is already there) into paths.data_dir, or ROOT=DIR; fetch-weights puts
# torchvision's ImageNet weights into torch.hub.get_dir()/checkpoints (docs/data.md).
fetch-cub: ## CUB-200-2011 (Caltech's CUB_200_2011.tgz) -> <root>/CUB_200_2011
fetch-tiny-imagenet: ## Tiny-ImageNet (CS231n's tiny-imagenet-200.zip) -> <root>/tiny-imagenet-200
fetch-cifar10: ## CIFAR-10 python version (Krizhevsky's page) -> <root>/cifar-10-batches-py
fetch-cifar100: ## CIFAR-100 python version (Krizhevsky's page) -> <root>/cifar-100-python
fetch-mnist: ## MNIST idx .gz files -> <root>/MNIST/raw
fetch-fashion-mnist: ## Fashion-MNIST idx .gz files (Zalando) -> <root>/FashionMNIST/raw
fetch-weights: ## ImageNet weights vgg16, resnet50 (V1), inception_v3 -> torch hub checkpoints
FETCHES := fetch-cub fetch-tiny-imagenet fetch-cifar10 fetch-cifar100 fetch-mnist fetch-fashion-mnist fetch-weights
.PHONY: $(FETCHES)
$(FETCHES): fetch-%: setup
	$(PY) -m infocam_exp.fetch $(subst -,_,$*) $(if $(ROOT),--root "$(ROOT)")

bench-mi: setup  ## Time the full synthetic MI grid in a fresh output folder (scripts/bench_mi_table.py)
	$(PY) scripts/bench_mi_table.py

clean-outputs:  ## Delete generated outputs (keeps outputs/.gitkeep)
	find outputs -mindepth 1 ! -name .gitkeep -delete
