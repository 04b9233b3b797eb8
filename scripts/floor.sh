#!/usr/bin/env bash
# tests/otel against the oldest OpenTelemetry hooktel declares (requirements-floor.txt),
# in a second virtualenv, .venv-floor. scripts/test.sh runs it after the main runs, which
# test the newest release (requirements-dev.txt). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv-floor/.installed
if [ ! -f "$stamp" ] || [ -n "$(find requirements-floor.txt pyproject.toml setup.py -newer "$stamp")" ]; then
    rm -rf .venv-floor
    python3 -m venv .venv-floor
    .venv-floor/bin/python -m pip install -q --upgrade pip
    .venv-floor/bin/python -m pip install -q -r requirements-floor.txt
    .venv-floor/bin/python -m pip install -q --no-deps -e .
    touch "$stamp"
fi
.venv-floor/bin/python -c 'import opentelemetry.sdk.version as v, hooktel.otel._sdk as s
assert v.__version__ == s.FLOOR, (v.__version__, s.FLOOR)'
.venv-floor/bin/python -m pytest -p no:cacheprovider tests/otel "$@"
