# Two entry points, both self-contained on a fresh machine with Python 3.11 and make:
#   make run   - set up, then run ticker on its embedded defaults
#   make test  - set up, then lint, type-check and run the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "python3.11 venv failed: apt-get install python3.11-venv"; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

run: $(BIN)/.installed
	$(BIN)/ticker serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

pytest: $(BIN)/.installed
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_core.py --frames 30000 --runs 3 --cpu 1
	$(BIN)/python benchmarks/bench_client.py --frames 20000 --runs 5 --cpu 1
	$(BIN)/python benchmarks/client_latency.py --rate 4500 --seconds 5
	$(BIN)/python benchmarks/bench_fanout.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
