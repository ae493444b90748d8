# d2_boxunc: set-up, demo, tests, benchmarks.  `make demo` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
METHOD ?= default
# Stamps: each step re-runs only when its inputs change.
DEPS_STAMP := $(VENV)/.stamp-deps
D2_STAMP := $(VENV)/.stamp-detectron2
PKG_STAMP := $(VENV)/.stamp-d2_boxunc
CSRC := $(shell find csrc -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) 2>/dev/null)
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)

.PHONY: setup demo study test test-portable lint format bench doctor cuda-check gpu-check kernel-coverage clean

setup: $(PKG_STAMP)

$(VENV)/bin/python:
	$(PYTHON_SYS) -m venv $(VENV)

$(DEPS_STAMP): requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	touch $@

$(D2_STAMP): $(DEPS_STAMP) dev/install_detectron2.sh
	bash dev/install_detectron2.sh $(PY)
	touch $@

$(PKG_STAMP): $(D2_STAMP) setup.py pyproject.toml $(CSRC)
	MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

doctor: setup
	$(PY) -m d2_boxunc.collect_env

demo: setup
	$(PY) -m d2_boxunc.demo --method $(METHOD)

# The evidence study (docs/study.md): every method x 3 seeds, intervals, claim verdicts.
study: setup
	$(PY) -m d2_boxunc.study $(STUDY_ARGS)

test: setup
	$(PY) -m pytest -q tests

# The portable build (D2_BOXUNC_PORTABLE=1: every platform-specific speed-up replaced by its
# fallback, docs/design.md#portable-build), built in a copy of the checkout under build/portable
# (the checkout's own d2_boxunc/_C*.so is left alone), then the tests that exercise csrc/ run on it.
test-portable: setup
	$(PY) dev/test_portable.py

# Formatter and linter (ruff; settings in pyproject.toml).  `make format` rewrites in place.
lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(DEPS_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Compile every CUDA source for sm_90 without running it (syntax + device-code check).
cuda-check: setup
	@if [ -z "$(NVCC)" ]; then echo "skipped: no nvcc"; exit 0; fi; \
	files=$$(find csrc -name '*.cu'); \
	if [ -z "$$files" ]; then echo "cuda-check: no .cu files"; exit 0; fi; \
	inc=$$($(PY) -c "from torch.utils.cpp_extension import include_paths; print(' '.join('-I'+p for p in include_paths()))"); \
	pyinc=$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['include'])"); \
	wheelinc=$$($(PY) -c "import glob, os, sysconfig; print(' '.join('-I' + p for p in glob.glob(os.path.join(sysconfig.get_paths()['purelib'], 'nvidia', '*', 'include'))))"); \
	abi=$$($(PY) -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"); \
	out=$$(mktemp -d); status=0; \
	for f in $$files; do \
	  echo "nvcc sm_90: $$f"; \
	  $(NVCC) -std=c++20 -arch=sm_90 --expt-relaxed-constexpr -DWITH_CUDA \
	    -D_GLIBCXX_USE_CXX11_ABI=$$abi -Icsrc $$inc -I$$pyinc $$wheelinc -c $$f -o $$out/$$(basename $$f).o || status=1; \
	done; rm -rf $$out; \
	if [ $$status -eq 0 ]; then echo "cuda-check: all .cu files compile for sm_90"; fi; exit $$status

# The first thing to run on a machine with a GPU (docs/gpu.md#gpu-check): build with CUDA, run the
# needs_cuda tests, compare every op's CUDA and CPU results, time the ops against torchvision and
# train 20 AMP iterations of each method, one summary table. Without a GPU: "skipped: no GPU".
gpu-check:
	@if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then \
	  echo "skipped: no GPU"; exit 0; fi; \
	$(MAKE) --no-print-directory setup && $(PY) dev/gpu_check.py

# Line coverage of the CUDA kernel bodies run on the CPU by the tests (docs/gpu.md#coverage):
# an -O0 --coverage build in a scratch directory, a few minutes of one core.
kernel-coverage: setup
	$(PY) dev/kernel_coverage.py

clean:
	rm -rf build d2_boxunc/_C*.so *.egg-info output
