# Every target bootstraps .venv itself, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	bash scripts/ensure-softhsm.sh
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check dssesign tests bench scripts
	$(VENV)/bin/ruff format --check dssesign tests bench scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# pytest exits 5 when it collects nothing; that must fail the run, and it does (non-zero).
unit: $(STAMP)
	bash scripts/ensure-softhsm.sh
	bash scripts/ensure-localstack.sh
	bash scripts/ensure-sigstore-js.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider

test: lint typecheck unit

bench: $(STAMP)
	bash scripts/ensure-softhsm.sh
	bash scripts/ensure-localstack.sh
	$(PY) -m bench.run --markdown docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
