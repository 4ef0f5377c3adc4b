#!/usr/bin/env bash
# `make test` after ruff: mypy --strict beside pytest, not before it. mypy is one process on one core
# for about 10 s, and the suite keeps both cores busy from its first second; side by side the pair
# ends about 10 s sooner. mypy's report is printed when pytest ends; either failing fails the whole.
set -uo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp)
bash scripts/typecheck.sh >"$report" 2>&1 &
typecheck=$!
trap 'kill "$typecheck" 2>/dev/null; rm -f "$report"' EXIT
.venv/bin/pytest "$@"
tests=$?
wait "$typecheck"
types=$?
echo "== mypy --strict (ran beside pytest)"
cat "$report"
if [ "$types" -ne 0 ]; then
  echo "mypy --strict failed" >&2
  exit "$types"
fi
exit "$tests"
