#!/usr/bin/env bash
# Every test, both ways: with the compiled extensions, then with their pure-Python twins
# (HOOKTEL_PURE_PYTHON=1), then the native tests against an ASan/UBSan build, then the
# OpenTelemetry tests at the oldest OpenTelemetry hooktel declares (scripts/floor.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
HOOKTEL_PURE_PYTHON=1 .venv/bin/python -m pytest "$@"
bash scripts/asan.sh
bash scripts/floor.sh
