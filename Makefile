# eSanté eDocuments — the two commands of the README.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-m "not e2e"'
PYTEST_ARGS ?=

.PHONY: demo test install lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## make demo: the platform with demo data on SQLite, at http://127.0.0.1:8000/
demo: install
	$(VENV)/bin/esante demo --port $${PORT:-8000}

## make test: the whole test suite (DATABASE_URL selects the database; SQLite by default),
## browser tests included (they skip, saying why, without /usr/bin/chromium or npm)
test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	ESANTE_DEBUG=1 ESANTE_DATA_DIR=$$(mktemp -d) $(VENV)/bin/mypy

bench: install
	$(PY) benchmarks/run.py
