"""Under gunicorn with several workers, each worker reports its own series, over OTLP.

The app and the command are docs/metrics.md's (`app.py`, `gunicorn --workers 4
app:app`), with a slow route added in a module that imports the app, a free
port and a short export interval. The workers export to the test's OTLP
receiver. Requests to the slow route are sent four at a time, so that each of
the four (sync) workers serves one. Every worker must then report its own
`http.server.request.duration` series (its own `service.instance.id`), and the
latest cumulative counts of all of them must add up to the requests sent.
With and without `--preload` (the provider then made before the fork), where the
SDK renews the resource in each worker (docs/metrics.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider

from tests.otel.otlp_receiver import OtlpReceiver, receiver_thread
from tests.otel.test_metrics_docs import gunicorn_snippets
from tests.support.events import wait_for
from tests.support.servers import ROOT, ServerSpec, listening_port

WORKERS = 4
ROUNDS = 3
SERVED = """
import time

from app import app


@app.get("/slow")
def slow():
    time.sleep(0.3)  # long enough that four at once need four workers
    return "slow"
"""
LISTENING = r"Listening at: http://127\.0\.0\.1:(\d+)"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with receiver_thread() as running:
        yield running


def _gunicorn(tmp_path: Path, receiver: OtlpReceiver, preload: bool) -> subprocess.Popen[bytes]:
    app, command = gunicorn_snippets()
    (tmp_path / "app.py").write_text(app)
    (tmp_path / "served.py").write_text(SERVED)
    assert command == ["gunicorn", "--workers", str(WORKERS), "app:app"]
    args = [
        *command[1:-1],
        "--bind=127.0.0.1:0",
        "--no-control-socket",  # its default path is shared by every gunicorn on the machine
        "--graceful-timeout=5",
        *(["--preload"] if preload else []),
        "served:app",
    ]
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    with (tmp_path / "stderr.log").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _latest_counts(receiver: OtlpReceiver, route: str) -> dict[str, int]:
    """Per worker (service.instance.id): the count of its latest point for `route`."""
    with receiver.lock:
        found = list(receiver.metric_points)
    latest: dict[str, dict[str, Any]] = {}
    for point in found:
        if point["name"] != "http.server.request.duration":
            continue
        if point["attributes"].get("http.route") != route:
            continue
        assert point["temporality"] == 2  # cumulative
        worker = point["resource"]["service.instance.id"]
        if worker not in latest or point["time"] >= latest[worker]["time"]:
            latest[worker] = point
    return {worker: point["count"] for worker, point in latest.items()}


@pytest.mark.parametrize("preload", [False, True], ids=["per-worker-import", "preload"])
def test_each_worker_reports_its_own_series(
    tmp_path: Path, receiver: OtlpReceiver, preload: bool
) -> None:
    if preload and not hasattr(MeterProvider, "_handle_fork"):
        pytest.skip("this SDK keeps the master's resource in the workers (docs/metrics.md)")
    process = _gunicorn(tmp_path, receiver, preload)
    try:
        spec = ServerSpec((), LISTENING)
        port = wait_for(
            lambda: listening_port(spec, tmp_path / "stderr.log", process), "gunicorn", 30
        )
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=limits) as client, ThreadPoolExecutor(WORKERS) as pool:
            item = client.get(f"http://127.0.0.1:{port}/items/7")
            assert item.json() == {"item": "7"}
            for _ in range(ROUNDS):
                slow = list(pool.map(client.get, [f"http://127.0.0.1:{port}/slow"] * WORKERS))
                assert [r.status_code for r in slow] == [200] * WORKERS

        sent = ROUNDS * WORKERS
        counts = wait_for(
            lambda: (c := _latest_counts(receiver, "/slow")) and sum(c.values()) == sent and c,
            f"{sent} /slow requests reported",
            timeout=30,
        )
        assert len(counts) == WORKERS, f"series per worker: {counts}"
        assert sum(_latest_counts(receiver, "/items/<item_id>").values()) == 1
        with receiver.lock:
            services = {p["resource"]["service.name"] for p in receiver.metric_points}
        assert services == {"shop"}
    finally:
        _stop(process)
