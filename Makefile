# The two commands of the README's Quickstart: `make demo` and `make test`.
VENV := .venv/bin
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# Where the machine sets PYTHONDONTWRITEBYTECODE, every flow run, worker, server and emulator process
# would compile the modules it imports from source again; here the first import writes the bytecode.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup demo test test-fast lint typecheck pytest bench

setup:
	@bash scripts/setup.sh

demo: setup
	@$(VENV)/python -m prefect_lipsync.demo --out demo-output

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check prefect_lipsync flows tasks blocks

typecheck: setup
	bash scripts/typecheck.sh

# Most tests wait (emulator latency, a Prefect server, a worker's poll) rather than compute, so more
# workers than cores pays; each worker has its own temp dirs, ports and Prefect home (tests/conftest.py).
PYTEST_WORKERS ?= 4
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

pytest: setup
	$(VENV)/pytest $(PYTEST_PARALLEL) --durations=25

# The inner loop: everything but the `slow` integration tests.
test-fast: setup
	$(VENV)/pytest $(PYTEST_PARALLEL) -m "not slow" --durations=10

# ruff, then mypy --strict beside the whole suite (scripts/test.sh).
test: lint
	bash scripts/test.sh $(PYTEST_PARALLEL) --durations=25

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done
