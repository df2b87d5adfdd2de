# The two commands a user needs: `make run` and `make test`. Both set everything up first.
VENV := .venv
PY := $(VENV)/bin/python
SMALLCODE := $(VENV)/bin/smallcode

.PHONY: install models run test lint bench llama-server

install:
	@bash scripts/system-deps.sh
	@bash scripts/bootstrap.sh

models: install
	@$(SMALLCODE) models pull

run: models
	$(SMALLCODE) serve

lint: install
	$(PY) -m ruff check agents router retrieval policies tests
	$(PY) -m mypy

test: models lint llama-server
	$(PY) -m pytest

bench: models
	$(SMALLCODE) bench local

llama-server: install
	@bash scripts/build-llama-server.sh
