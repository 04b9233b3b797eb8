#!/usr/bin/env bash
# Set up a fresh machine for the tests: wrk (benchmarks), a C compiler and the Python
# headers (hooktel's extensions), and a virtualenv in .venv with hooktel (editable,
# extensions built in place) and everything in requirements-dev.txt. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ -n "$(find requirements-dev.txt pyproject.toml setup.py -newer "$stamp")" ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements-dev.txt
    .venv/bin/python -m pip install -q -e '.[otel]'
    touch "$stamp"
fi
# The editable install builds the extensions in place; rebuild those whose C sources
# changed since (a no-op when none did).
.venv/bin/python setup.py -q build_ext --inplace 2>&1 | grep -v -e '^running' -e '^copying' || true
