# The two commands a user needs: `make run` and `make test`. Both set everything up first.
VENV := .venv
PY := $(VENV)/bin/python
SMALLCODE := $(VENV)/bin/smallcode

.PHONY: install models run test lint bench llama-server reliability topology

install:
	@bash scripts/system-deps.sh
	@bash scripts/bootstrap.sh

models: install
	@$(SMALLCODE) models pull

run: models llama-server
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

# The reliability suite with its long runs (load for 60 s, a 200-request burst, a 30-minute
# soak); figures in reliability-figures.jsonl and the terminal summary (RELIABILITY.md).
reliability: models llama-server
	rm -f reliability-figures.jsonl
	RELIABILITY_FIGURES=reliability-figures.jsonl $(PY) -m pytest tests/reliability -m ""

# The one-machine topology (two APIs, two workers, a Valkey Cluster with replicas, two
# llama-servers, a scripted cloud) under 120 s of load while one API, one worker, one Valkey
# primary and one llama-server are SIGKILLed; figures in topology-figures.json (RELIABILITY.md).
# `make test` runs the same with 6 s of load. Run it with nothing else on the machine.
topology: models llama-server
	TOPOLOGY_LOAD_S=120 TOPOLOGY_CLIENTS=8 TOPOLOGY_FIGURES=topology-figures.json \
		$(PY) -m pytest tests/topology -q -s
