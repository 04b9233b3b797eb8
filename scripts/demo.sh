#!/usr/bin/env bash
# The main job: a real server handles a few requests and prints what hooktel saw.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/hook_events.py
