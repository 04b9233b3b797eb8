#!/usr/bin/env bash
# The main job: a client calls service A, which calls service B, each its own process with
# its own service.name; the trace prints as a tree, then every span. Installs only what it
# runs (hooktel[otel], Starlette, uvicorn) in .venv-demo: no development tools, no root.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv-demo/.installed
if [ ! -f "$stamp" ] || [ -n "$(find examples/requirements.txt pyproject.toml setup.py -newer "$stamp")" ]; then
    rm -rf .venv-demo
    python3 -m venv .venv-demo
    .venv-demo/bin/python -m pip install -q -e '.[otel]' -r examples/requirements.txt
    touch "$stamp"
fi
exec .venv-demo/bin/python examples/two_services.py
