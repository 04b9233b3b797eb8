#!/usr/bin/env bash
# Set up a fresh machine for the tests: wrk (benchmarks), a C compiler and the Python
# headers (hooktel's extensions), and a virtualenv per tested Python: .venv for the
# machine's python3, .venv-3.10 and .venv-3.13 for the oldest and newest hooktel supports
# (scripts/pythons.sh), each with hooktel (editable, extensions built in place) and
# everything in requirements-dev.txt. Safe to run again: a virtualenv is only reinstalled
# when its requirements changed, and pip's cache keeps that quick.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pythons.sh
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# make_venv DIR PYTHON: DIR holds hooktel and the test dependencies, for PYTHON.
make_venv() {
    local venv=$1 python=$2
    local stamp=$venv/.installed
    if [ ! -f "$stamp" ] || [ -n "$(find requirements-dev.txt pyproject.toml setup.py -newer "$stamp")" ]; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -r requirements-dev.txt
        "$venv/bin/python" -m pip install -q -e '.[otel]'
        touch "$stamp"
    fi
    # The editable install builds the extensions in place (each Python's own file names);
    # rebuild those whose C sources changed since (a no-op when none did).
    "$venv/bin/python" setup.py -q build_ext --inplace 2>&1 | grep -v -e '^running' -e '^copying' || true
}

make_venv .venv python3
for version in "${OTHER_PYTHONS[@]}"; do
    if python=$(python_for "$version"); then
        make_venv ".venv-$version" "$python"
    else
        echo "setup.sh: no Python $version (looked in pyenv's versions and on PATH):" \
            "scripts/test.sh will fail its stages" >&2
    fi
done
