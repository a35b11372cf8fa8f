# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is pinned so that pip takes the CPU wheel on this machine's disk (an unpinned torch
# pulls a multi-GB CUDA build). Override with `make TORCH_SPEC=torch==X ...` elsewhere.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint students install clean help

help:
	@echo "make demo     - install and run MD with the shipped 'tiny' student (+ validation report)"
	@echo "make test     - install the test extras and run the test suite"
	@echo "make bench    - run the benchmarks (pytest-benchmark), results in benchmarks/results/"
	@echo "make students - reproduce the shipped students from scratch (hours on 2 cores)"
	@echo "make lint     - ruff"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test,xtb,validation,smiles,orb,export,metatomic,sevennet,dask]" "$(TORCH_SPEC)"
	# the default student's compiled packages (~1 min once; later processes load them in ms)
	$(VENV)/bin/ase-distill compile tiny || echo "compiling tiny failed: it runs eagerly instead"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) examples/md_tiny.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check ase_distill training md_validation tests examples benchmarks

bench: $(STAMP)
	$(PIP) install -q -e ".[bench]" "$(TORCH_SPEC)"
	PY=$(PY) bash benchmarks/run_all.sh

students: $(STAMP)
	OMP_NUM_THREADS=1 bash training/make_students.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
