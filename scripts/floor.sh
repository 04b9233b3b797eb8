#!/usr/bin/env bash
# tests/otel against two older OpenTelemetry releases hooktel declares, each in its own
# virtualenv: the floor (requirements-floor.txt, .venv-floor) and a middle release where
# the SDK's private layouts changed (requirements-middle.txt, .venv-middle); the seam,
# hooktel/otel/_sdk, names both (FLOOR, MIDDLE). scripts/test.sh runs it after the main
# runs, which test the newest release (requirements-dev.txt). A virtualenv is made again
# only when missing or older than what it was made from. Safe to run again; arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

run() {  # run <name> <the seam's constant for its version> [pytest arguments]
    local name=$1 constant=$2 venv=.venv-$1
    shift 2
    local stamp=$venv/.installed
    if [ ! -f "$stamp" ] || [ -n "$(find "requirements-$name.txt" pyproject.toml setup.py -newer "$stamp")" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -r "requirements-$name.txt"
        "$venv/bin/python" -m pip install -q --no-deps -e .
        touch "$stamp"
    fi
    "$venv/bin/python" -c "import opentelemetry.sdk.version as v, hooktel.otel._sdk as s
assert v.__version__ == s.$constant, (v.__version__, s.$constant)"
    echo "tests/otel with OpenTelemetry $name ($("$venv/bin/python" -c "import hooktel.otel._sdk as s; print(s.$constant)"))"
    "$venv/bin/python" -m pytest -p no:cacheprovider tests/otel "$@"
}

run floor FLOOR "$@"
run middle MIDDLE "$@"
