# Two commands do everything on a fresh clone with Python 3.11+:
#   make run   - create .venv, install requirements.txt (+ torch for the Live run page where an NVIDIA
#                GPU is present, or with LIVE=1), start the dashboard
#   make test  - create/update .venv, install requirements + dev requirements, run lint and tests
#   make class - a lecture hall's server: one dashboard process per core behind nginx (apt-get install nginx),
#                sticky sessions; WORKERS=N sets the count (deploy/class_server.py)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch (several GB) only where the Live run page can use a GPU, or on request: make run LIVE=1
LIVE ?= $(if $(shell command -v nvidia-smi 2>/dev/null),1,)

.PHONY: run class test lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kvdash needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.live-deps: requirements-live.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-live.txt
	@touch $@

$(VENV)/.dev-deps: requirements.txt requirements-live.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@ $(VENV)/.run-deps $(VENV)/.live-deps

run: $(VENV)/.run-deps $(if $(LIVE),$(VENV)/.live-deps)
	$(if $(LIVE),,@echo "no NVIDIA GPU found: torch is not installed and the Live run page shows stored runs (make run LIVE=1 installs it)")
	$(BIN)/streamlit run app.py

class: $(VENV)/.run-deps
	$(BIN)/python deploy/class_server.py $(if $(WORKERS),--workers $(WORKERS))

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.dev-deps
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
