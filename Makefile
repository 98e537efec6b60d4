# Every target bootstraps .venv itself, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint typecheck unit unit-fast docs bench fuzz clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	bash scripts/ensure-softhsm.sh
	bash scripts/ensure-registry.sh
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check dssesign tests bench scripts
	$(VENV)/bin/ruff format --check dssesign tests bench scripts
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# pytest exits 5 when it collects nothing; that must fail the run, and it does (non-zero).
# The unit tier (no server) runs on every core; the integration tier, which starts servers
# on 127.0.0.1, one test at a time.
unit: $(STAMP)
	bash scripts/ensure-softhsm.sh
	bash scripts/ensure-localstack.sh
	bash scripts/ensure-sigstore-js.sh
	bash scripts/ensure-registry.sh
	bash scripts/ensure-redis.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not integration" -n auto
	$(VENV)/bin/pytest -q -p no:cacheprovider -m integration

test: lint typecheck unit

# The fast loop: lint, types and the unit tier (no server, no node, no wheel builds).
unit-fast: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not integration" -n auto

check: lint typecheck unit-fast

# API reference of the public names (pdoc), written to build/docs.
docs: $(STAMP)
	$(VENV)/bin/pdoc --output-directory build/docs dssesign

bench: $(STAMP)
	bash scripts/ensure-softhsm.sh
	bash scripts/ensure-localstack.sh
	$(PY) -m bench.run --markdown docs/benchmarks.md

# Coverage-guided fuzzing (atheris, the `fuzz` extra): FUZZ_SECONDS per target, one process at a
# time under nice; appends a row per target to docs/fuzzing.md. See docs/fuzzing.md.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?=
fuzz: $(STAMP)
	$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install --quiet -e '.[fuzz]'
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
