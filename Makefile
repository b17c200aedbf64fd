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

.PHONY: install run test test-slow test-all test-machines check-aarch64 lint clean

install: $(STAMP)

# the install compiles the multispin kernels (C): rebuilt when their sources change
$(STAMP): pyproject.toml setup.py $(wildcard spinsim/engines/cpu/_*.c spinsim/engines/cpu/_*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH)),$(BIN)/python -m pip install --quiet "$(TORCH)")
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# One default simulation (2D Ising around Tc); results under outputs/<date>/<time>/.
run: install
	$(BIN)/spinsim simulate

# The default suite (< 8 minutes on 2 cores, install included); the 15 slowest tests are listed
# at the end. Slow statistical checks: make test-slow.
test: install
	$(BIN)/python -m pytest -m "not slow" -q --durations=15

# The project's lint rules (pyproject.toml [tool.ruff]); CI fails on any finding.
lint: install
	$(BIN)/python -m ruff check .

# What other processors compute, checked on this one: the golden runs and the engines'
# equality tests under torch's AVX2 and generic kernels, the multispin kernels for AVX2 and
# plain x86-64, and numba compiling for a CPU without AVX-512 (its own cache folder, cold).
MACHINE_TESTS = tests/test_golden.py tests/test_fast_engines.py tests/test_fast_glass.py \
	tests/test_fast_tempering.py tests/test_aes.py
test-machines: install
	ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest -m "not slow" -q $(MACHINE_TESTS)
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -m "not slow" -q $(MACHINE_TESTS)
	SPINSIM_ISA=avx2 $(BIN)/python -m pytest -m "not slow" -q $(MACHINE_TESTS)
	SPINSIM_ISA=baseline $(BIN)/python -m pytest -m "not slow" -q $(MACHINE_TESTS)
	NUMBA_CPU_NAME=haswell NUMBA_CACHE_DIR=$(CURDIR)/build/numba-haswell \
		$(BIN)/python -m pytest -m "not slow" -q tests/test_golden.py tests/test_fast_engines.py tests/test_cluster.py

# The kernels cross-compiled and linked for aarch64 (other processors build the plain set only):
# needs Debian's gcc-aarch64-linux-gnu; nothing runs.
AARCH64_CC ?= aarch64-linux-gnu-gcc
check-aarch64: install
	@command -v $(AARCH64_CC) >/dev/null || { echo "no $(AARCH64_CC): apt-get install gcc-aarch64-linux-gnu"; exit 2; }
	mkdir -p build/aarch64
	for f in _isa_avx512 _isa_avx2 _isa_baseline _kernels; do \
		$(AARCH64_CC) -O3 -fopenmp -ffp-contract=off -std=gnu11 -fPIC -Wall -Werror \
			-I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
			-c spinsim/engines/cpu/$$f.c -o build/aarch64/$$f.o || exit 1; \
	done
	$(AARCH64_CC) -shared -fopenmp build/aarch64/*.o -o build/aarch64/_kernels.so
	@echo "build/aarch64/_kernels.so: aarch64 kernels compiled and linked"

test-slow: install
	$(BIN)/python -m pytest -m slow -q

test-all: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
