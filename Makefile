# The two commands of the README's Quickstart: `make demo` and `make test`.
VENV := .venv/bin
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: setup demo test lint typecheck pytest bench

setup:
	@bash scripts/setup.sh

demo: setup
	@$(VENV)/python -m prefect_lipsync.demo --out demo-output

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check prefect_lipsync flows tasks blocks

typecheck: setup
	bash scripts/typecheck.sh

pytest: setup
	$(VENV)/pytest

test: lint typecheck pytest

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done
