# The two commands a newcomer runs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k compare"`; two xdist workers by default.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: run app demo worker test lint bench browser-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt requirements-optional.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -r requirements-optional.txt
	touch $(VENV)/.runtime $@

# Import the bundled sample (idempotent), start the worker in the background and the app in the
# foreground on 127.0.0.1; when the app exits (Ctrl-C), the trap stops the worker too.
run: $(VENV)/.runtime
	$(BIN)/python -m recsys_core import-sample --quiet
	@$(BIN)/python -m recsys_core worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	echo "worker started (pid $$worker); app on http://127.0.0.1:$(PORT)"; \
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --browser.gatherUsageStats false

# The app alone (it starts a worker itself when none is alive).
app: $(VENV)/.runtime
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --browser.gatherUsageStats false

# Demo mode (README "Demo mode"): read-only, the Demo page only, on the sample's finished runs.
# It never trains and starts no worker: with no finished run yet it says how to make some.
demo: $(VENV)/.runtime
	$(BIN)/python -m recsys_core import-sample --quiet
	@$(BIN)/python -m recsys_core runs list --status done --limit 1 --json | grep -q '"id"' || \
	  echo "No finished run yet: demo mode shows finished runs only. Train some first, e.g." \
	  "$(BIN)/python -m recsys_core runs submit movielens-small --model ease --wait" \
	  "(or make run and the Train page), then make demo again."
	RECSYS_EXPLORER_MODE=demo RECSYS_EXPLORER_AUTOSTART_WORKER=0 $(BIN)/streamlit run app.py \
	  --server.address 127.0.0.1 --server.port $(PORT) --browser.gatherUsageStats false

worker: $(VENV)/.runtime
	$(BIN)/python -m recsys_core worker

# Debian's chromium for the real-browser test; the machine (and CI) runs as root.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

test: $(VENV)/.dev browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check recsys_core tests benchmarks app.py ui.py ui_access.py ui_demo.py pages

bench: $(VENV)/.runtime
	$(BIN)/python -m recsys_core bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
