# Set-up, demo, tests and benchmarks. Everything installs into .venv/ at the project root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
# Another package index (e.g. a specific CUDA build of torch): pip's own PIP_INDEX_URL and
# PIP_EXTRA_INDEX_URL environment variables.
STAMP := $(VENV)/.moseg-setup-done

.PHONY: setup demo test test-fast bench lint format clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/cpu-lock.txt Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" setuptools wheel
	# torch first and pinned, so nothing later can pull a different (CUDA) build
	$(PIP) install --quiet "torch==$(TORCH_VERSION)"
	$(PIP) install --quiet -c requirements/cpu-lock.txt "torch==$(TORCH_VERSION)" -e ".[dev,sam2,plot,hf,slurm]"
	# sam2 from the registry declares torchvision and a newer torch: install it without
	# dependencies and without its CUDA extension (README, Set-up)
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-deps --no-build-isolation -c requirements/cpu-lock.txt sam2
	$(PY) -c "import torch, h5py, cv2, hydra, lightning, sam2; print('moseg setup ok: torch', torch.__version__, 'cuda', torch.cuda.is_available())"
	@touch $(STAMP)

demo: setup
	$(PY) train.py

# test: what CI runs, lint + every test (about 7 min on 2 cores)
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

# test-fast: lint + the tests not marked slow (under a minute on 2 cores), for the edit-test loop
test-fast: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
