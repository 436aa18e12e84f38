# The two commands a newcomer needs:
#   make example   set up, then run examples/websocket-close.json against the embedded sandbox
#   make test      set up, then lint, type-check and run the whole test suite (what CI runs)
VENV := .venv/bin
EXAMPLE ?= examples/websocket-close.json

.PHONY: setup example test lint unit

setup:
	./scripts/bootstrap

example: setup
	mkdir -p results
	$(VENV)/chaos --no-version-check --log-file results/chaostoolkit.log \
		run --journal-path results/journal.json $(EXAMPLE)

lint: setup
	$(VENV)/ruff check chaosgenesys tests benchmarks
	$(VENV)/mypy

unit: setup
	$(VENV)/python scripts/run-tests -q --durations=30

test: lint unit
