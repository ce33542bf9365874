# Quick start: `make run` starts the app, `make test` runs every test.
# Both create .venv and install what they need first (idempotent).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test test-fast test-numeric-python bench setup setup-test browser lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# A stamp per requirements file, so re-running `make` installs only what changed.
$(VENV)/.stamp-run: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.stamp-test: requirements-test.txt requirements-dask.txt $(VENV)/.stamp-run
	$(BIN)/pip install -r requirements-test.txt -r requirements-dask.txt
	touch $@

setup: $(VENV)/.stamp-run
setup-test: $(VENV)/.stamp-test browser

# Browser tests drive Debian's Chromium; install it when missing (needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }

run: setup
	$(BIN)/streamlit run app.py --server.port $(PORT) --browser.gatherUsageStats false

# The linter first: an undefined name on an error path fails here, not in a user's hands.
lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .

test: setup-test lint test-numeric-python
	$(BIN)/python -m pytest

# The core numeric tests once more with the LSTM's C loops off (RNNLAB_NATIVE=0): the
# Python loops must give the same numbers, as they do on a machine without a C compiler.
# test_native's build tests assert what holds in that mode (never built, the status
# says why); `test`'s own run covers the C loops.
NUMERIC_TESTS := tests/test_bptt.py tests/test_probe.py tests/test_cells.py tests/test_native.py \
	tests/test_train.py tests/test_explain.py
test-numeric-python: $(VENV)/.stamp-test
	RNNLAB_NATIVE=0 $(BIN)/python -m pytest $(NUMERIC_TESTS)

test-fast: setup-test lint
	$(BIN)/python -m pytest -m "not browser"

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV)
