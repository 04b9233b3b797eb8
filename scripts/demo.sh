#!/usr/bin/env bash
# The main job: a client calls service A, which calls service B; every span prints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/two_services.py
