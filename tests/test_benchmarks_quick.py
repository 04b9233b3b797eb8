"""The benchmark harness cannot rot: its quick mode runs, and every variant serves requests.

Only that is asserted. Throughput, nanoseconds and memory are reported by the
harness itself (`python -m benchmarks.run`), never checked in a timed test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    ("uvicorn-asgi", "bare"),
    ("uvicorn-asgi", "hooktel-idle"),
    ("uvicorn-asgi", "hooktel-noop"),
    ("uvicorn-asgi", "hooktel-otel"),
    ("uvicorn-asgi", "otel-contrib"),
    ("uvicorn-asgi", "sdk-floor"),
    ("uvicorn-asgi", "hooktel-otel-metrics"),
    ("uvicorn-asgi", "otel-contrib-metrics"),
    ("uvicorn-starlette", "bare"),
    ("uvicorn-starlette", "hooktel-otel"),
    ("uvicorn-starlette", "otel-contrib"),
    ("uvicorn-starlette", "starlette-otel"),
    ("uvicorn-starlette", "hooktel-otlp"),
    ("uvicorn-starlette", "hooktel-otlp-native"),
    ("uvicorn-starlette", "ddtrace"),
    ("uvicorn-asgi", "hooktel-otlp"),
    ("uvicorn-asgi", "hooktel-otlp-native"),
    ("uvicorn-std-starlette", "bare"),
    ("uvicorn-std-starlette", "hooktel-otel"),
    ("uvicorn-std-starlette", "hooktel-otlp"),
    ("uvicorn-std-starlette", "hooktel-otlp-native"),
    ("uvicorn-std-starlette", "ddtrace"),
    ("uvicorn-std-starlette", "starlette-otel"),
    ("uvicorn-std-starlette", "otel-contrib"),
    ("uvicorn-std-starlette", "hooktel-otel-metrics"),
    ("uvicorn-std-starlette", "otel-contrib-metrics"),
    ("uvicorn-std-asgi", "bare"),
    ("uvicorn-std-asgi", "hooktel-otel"),
    ("uvicorn-std-asgi", "hooktel-otlp-native"),
    ("uvicorn-starlette", "sdk-floor"),
    ("uvicorn-starlette", "sdk-floor-otlp"),
    ("uvicorn-starlette", "hooktel-otel-metrics"),
    ("uvicorn-starlette", "otel-contrib-metrics"),
    ("gunicorn-wsgi", "bare"),
    ("gunicorn-wsgi", "hooktel-idle"),
    ("gunicorn-wsgi", "hooktel-noop"),
    ("gunicorn-wsgi", "hooktel-otel"),
    ("gunicorn-wsgi", "otel-contrib"),
    ("gunicorn-wsgi", "sdk-floor"),
    ("gunicorn-flask", "bare"),
    ("gunicorn-flask", "hooktel-otel"),
    ("gunicorn-flask", "otel-contrib"),
    ("gunicorn-flask", "sdk-floor"),
    ("httpserver", "bare"),
    ("httpserver", "hooktel-idle"),
    ("httpserver", "hooktel-noop"),
    ("httpserver", "hooktel-otel"),
}


def test_quick_benchmark_every_variant_serves_requests(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk is not installed: scripts/setup.sh installs it"
    command = [sys.executable, "-m", "benchmarks.run", "--quick", "--results-dir", str(tmp_path)]
    harness = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = harness.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        harness.terminate()  # on SIGTERM the harness stops the server it started
        stdout, stderr = harness.communicate(timeout=30)
        pytest.fail(f"the quick benchmark ran over 180 s\n{stdout}\n{stderr}")
    assert harness.returncode == 0, f"{stdout}\n{stderr}"

    (results,) = tmp_path.glob("quick-*.json")
    data = json.loads(results.read_text(encoding="utf-8"))
    planned = {(server, v) for server, variants in data["plan"].items() for v in variants}
    assert planned >= EXPECTED
    served = {
        (run["server"], run["variant"])
        for run in data["load"]["runs"]
        if run["result"] and run["result"]["requests"] > 0 and run["result"]["requests_per_sec"] > 0
    }
    assert served == planned, f"no requests served by {sorted(planned - served)}"
    assert data["chart"] and Path(data["chart"]).is_file(), "no chart was drawn"
