# One command each: `make demo` runs the main job on an embedded default, `make test` runs the suite.
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where the real datasets live (CIFAR-10, Fashion-MNIST); tests that need them skip without it.
AUTODATA_DATA ?= $(abspath ../shared/data)
export AUTODATA_DATA

.PHONY: demo test test-slow venv clean

$(BIN)/autodata: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip -q
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/autodata

demo: venv
	$(BIN)/autodata demo

test: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -m "not slow"

# The slower marked cases (CI runs them after `make test`).
test-slow: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -m slow

clean:
	rm -rf $(VENV) .pytest_cache
