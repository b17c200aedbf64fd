# spinsim: `make run` (set up + one default simulation), `make test` (set up + test suite).
#
# Set-up lives in a virtual environment (.venv). TORCH picks the torch build:
# the default pin installs the CPU wheel that this project's machines keep on
# local disk; on a GPU machine use e.g. `make run TORCH=torch` (pip's default
# build, CUDA on Linux) or `make run TORCH=` to keep a torch already installed.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow test-all clean

install: $(STAMP)

# the install compiles the multispin kernels (C): rebuilt when their sources change
$(STAMP): pyproject.toml setup.py spinsim/engines/cpu/_multispin.c spinsim/engines/cpu/_multispin_kernel.h
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH)),$(BIN)/python -m pip install --quiet "$(TORCH)")
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# One default simulation (2D Ising around Tc); results under outputs/<date>/<time>/.
run: install
	$(BIN)/spinsim simulate

# The default suite (< 10 minutes on 2 cores). Slow statistical checks: make test-slow.
test: install
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: install
	$(BIN)/python -m pytest -m slow -q

test-all: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
