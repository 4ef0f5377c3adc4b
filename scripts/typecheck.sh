#!/usr/bin/env bash
# mypy --strict over the whole package, the Prefect layer included. setuptools maps flows/, tasks/
# and blocks/ into prefect_lipsync (package-dir), which mypy cannot follow from the source tree, so
# this lays the installed layout out as links in .typecheck/ and checks that.
set -euo pipefail
cd "$(dirname "$0")/.."
root=.typecheck/prefect_lipsync
rm -rf .typecheck
mkdir -p "$root"
for entry in prefect_lipsync/*; do
  ln -s "$PWD/$entry" "$root/$(basename "$entry")"
done
for layer in flows tasks blocks; do
  ln -s "$PWD/$layer" "$root/$layer"
done
cd .typecheck
exec ../.venv/bin/mypy --config-file ../pyproject.toml -p prefect_lipsync "$@"
