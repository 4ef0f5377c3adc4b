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
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: Python 3.11 or newer is needed (found $("$PYTHON" --version))" >&2; exit 1; }
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # pip compiles each installed file to bytecode in one process; compileall below does it on every core.
  .venv/bin/python -m pip install -q --no-compile --disable-pip-version-check -c constraints.txt -e ".[dev]"
  site_packages=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # Some packages ship files for other Python versions (templates, test data): they stay uncompiled.
  .venv/bin/python -m compileall -q -j 0 "$site_packages" >/dev/null 2>&1 || true
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Bytecode for the project's own modules: every flow run, worker, CLI call and emulator is a new Python
# process, and where PYTHONDONTWRITEBYTECODE is set (as on some CI machines) each would compile them from
# source again. Python still checks each file's mtime, so an edited module is never run stale.
.venv/bin/python -m compileall -q -j 0 prefect_lipsync flows tasks blocks >/dev/null
