#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine: system tools, a virtual
# environment in .venv, and the pinned Python packages. Safe to run again: it skips what exists.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
# The browser test drives Debian's chromium (Playwright cannot download a browser here); PostgreSQL
# backs the Prefect server tests that need more than SQLite.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with sudo apt-get"
    sudo apt-get update -qq && sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (Debian/Ubuntu: apt-get install ${need_apt[*]}; macOS: brew install ffmpeg espeak-ng chromium postgresql)" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.9
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: Python 3.11 or newer is needed (found $("$PYTHON" --version))" >&2; exit 1; }
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv (pinned by constraints.txt)"
  # uv installs the pinned set in about 2 s from its cache, where pip takes about 20 s; it asks the
  # package index only when its cache lacks a package (a fresh machine). pip, with the machine's own
  # index settings, is the last resort where uv cannot reach an index.
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  uv_install=(.venv/bin/uv pip install --quiet --python .venv/bin/python -c constraints.txt -e ".[dev]")
  "${uv_install[@]}" --offline 2>/dev/null || "${uv_install[@]}" ||
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Bytecode is not compiled here for the 13,000 installed modules (15 s on two cores): the Makefile lets
# the first process that imports a module write its bytecode (PYTHONDONTWRITEBYTECODE unexported), so
# the suite's 150 Python processes compile only what they import, once.
