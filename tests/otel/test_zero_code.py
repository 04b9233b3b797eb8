"""`opentelemetry-instrument python app.py` enables hooktel with no code change.

The launcher finds `HttpInstrumentation` through the `opentelemetry_instrumentor`
entry point `hooktel`; the app (`apps/zero_code_app.py`) has no telemetry code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(sys.executable).with_name("opentelemetry-instrument")


def test_the_launcher_traces_an_app_with_no_telemetry_code() -> None:
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "zero-code",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "PYTHONPATH": str(ROOT),
    }
    app = [str(LAUNCHER), sys.executable, "-m", "tests.otel.apps.zero_code_app"]
    with subprocess.Popen(app, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the app listens (or exits)
        assert first.startswith("listening on "), first
        port = int(first.split()[-1])
        parent = f"00-{'1' * 32}-{'2' * 16}-01"
        response = httpx.get(f"http://127.0.0.1:{port}/hi", headers={"traceparent": parent})
        output, _ = process.communicate(timeout=30)
    assert response.status_code == 200
    assert response.headers["traceparent"].startswith(f"00-{'1' * 32}-")
    span = json.loads(output[output.index("{") :])
    assert span["name"] == "GET"
    assert span["kind"] == "SpanKind.SERVER"
    assert span["context"]["trace_id"] == "0x" + "1" * 32
    assert span["parent_id"] == "0x" + "2" * 16
    assert span["attributes"]["url.path"] == "/hi"
    assert span["resource"]["attributes"]["service.name"] == "zero-code"
