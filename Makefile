# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch==2.13.0 (CPU) first, then the package with its dev extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean install postgres-bin

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/shapeworld_demo.py

test: $(STAMP) postgres-bin
	$(BIN)/ruff check seal_agent tests benchmarks examples
	$(BIN)/ruff format --check seal_agent tests benchmarks examples
	$(BIN)/mypy seal_agent
	$(BIN)/python -m pytest -q

# tests/test_graph_postgres.py starts its own throw-away PostgreSQL server on 127.0.0.1;
# install the server binaries where they are absent (Debian/Ubuntu).
postgres-bin:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	  || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	       $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql; }

lint: $(STAMP)
	$(BIN)/ruff check seal_agent tests benchmarks examples
	$(BIN)/mypy seal_agent

format: $(STAMP)
	$(BIN)/ruff format seal_agent tests benchmarks examples
	$(BIN)/ruff check --fix seal_agent tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/search_length.py
	$(BIN)/python benchmarks/vstar_shapeworld.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache benchmarks/results
