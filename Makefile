# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lint test test-fast demo bench clean

install: $(STAMP)

# Re-install only when the project metadata changes: quick when already done.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Static checks (STYLE 16): ruff over the whole tree, mypy --strict on the pure modules ([tool.mypy] files).
lint: install
	$(PY) -m ruff check geoseg tests benchmarks
	$(PY) -m mypy

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install
	$(PY) -m geoseg.pipeline pipelines/demo.yaml --overwrite

bench: install
	$(PY) benchmarks/bench_tile.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
