#!/usr/bin/env bash
# The whole test suite: lint, format, types, then pytest (real servers on 127.0.0.1,
# plus one quick run of the benchmark harness).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
