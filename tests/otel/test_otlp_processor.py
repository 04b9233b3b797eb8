"""`OTLPSpanProcessor` end to end: a uvicorn app exports to a receiver process that decodes.

Under wrk load every served span arrives once; with the receiver down, slow,
or answering 500 or 429, the app keeps answering promptly, the queue stays
bounded, and `stats()` accounts for every span; a clean exit sends what was
queued; `HOOKTEL_PURE_PYTHON=1` runs the Python encoder with the same result.
The app (`apps/otlp_app.py`) is configured through the environment only.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otel.otlp_receiver import Fault, ReceiverProcess, receiver_process
from tests.otel.otlp_servers import AppServer, otlp_server
from tests.support.events import wait_for

SPANS_PER_REQUEST = 2  # hooktel's SERVER span and the handler's `work` span


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with receiver_process() as running:
        yield running


def accounted(stats: dict[str, Any]) -> int:
    return int(stats["exported"] + stats["dropped"] + stats["failed"] + stats["queued"])


def serve(app: AppServer, requests: int) -> float:
    """Send `requests` GET /work; the slowest response's latency, in seconds."""
    slowest = 0.0
    for _ in range(requests):
        started = time.monotonic()
        assert app.get("/work").status_code == 200
        slowest = max(slowest, time.monotonic() - started)
    return slowest


def check_received_once(receiver: ReceiverProcess, served: int) -> None:
    spans = receiver.spans()
    ids = Counter(span["span_id"] for span in spans)
    assert [i for i, n in ids.items() if n > 1] == [], "a span arrived twice"
    names = Counter(span["name"] for span in spans)
    assert names == {"GET /work": served, "work": served}


def test_under_load_every_served_span_arrives_once(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed: scripts/setup.sh installs it"
    # A queue that holds the whole run: what is checked is that the pipeline loses and
    # repeats nothing, not whether the export thread kept up on a busy machine (what a
    # full queue does, drop and count, is held by the receiver-down test below).
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "1000000"}
    with otlp_server("uvicorn", tmp_path, receiver.endpoint, env) as app:
        url = app.url("/work")
        done = subprocess.run(
            [wrk, "-t1", "-c16", "-d10s", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        stats = app.stats(flush=True)
    assert stats["flushed"] is True
    served = stats["served"]
    assert served >= int(done.stdout.split(" requests in ")[0].split()[-1])
    assert stats["dropped"] == stats["failed"] == stats["queued"] == 0
    assert stats["exported"] == SPANS_PER_REQUEST * served
    check_received_once(receiver, served)


def test_a_clean_exit_sends_every_queued_span(receiver: ReceiverProcess, tmp_path: Path) -> None:
    """uvicorn stopped with Ctrl-C; SIGTERM: see the zero-code test and docs/export.md."""
    # Nothing is sent before the exit: the timer is far off and no batch fills up.
    env = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048"}
    with otlp_server("uvicorn", tmp_path, receiver.endpoint, env) as app:
        serve(app, 100)
        assert app.stats()["queued"] == 200
        assert receiver.count() == 0
        app.stop(signal.SIGINT)
    check_received_once(receiver, 100)


def test_the_receiver_down_costs_the_app_nothing_and_every_span_is_counted(
    tmp_path: Path,
) -> None:
    nothing_there = "http://127.0.0.1:9/v1/traces"  # the discard port: refused
    env = {
        "OTEL_BSP_EXPORT_TIMEOUT": "1000",
        "OTEL_BSP_MAX_QUEUE_SIZE": "256",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with otlp_server("uvicorn", tmp_path, nothing_there, env) as app:
        slowest = serve(app, 600)
        stats = app.stats()
        assert stats["queued"] <= 256 + 64  # bounded: the queue and one batch on its way
        stats = wait_for(lambda: _settled(app), "every span counted as failed or dropped", 30)
    assert slowest < 1.0
    assert stats["exported"] == 0
    assert stats["failed"] > 0 and stats["dropped"] > 0
    assert accounted(stats) == SPANS_PER_REQUEST * 600
    assert "span(s) dropped (queue full" in app.stderr()


def _settled(app: AppServer) -> dict[str, Any] | None:
    stats = app.stats()
    return stats if stats["queued"] == 0 else None


def test_a_slow_receiver_does_not_slow_the_app(receiver: ReceiverProcess, tmp_path: Path) -> None:
    receiver.set_fault(Fault(delay=10.0, times=1))  # the first POST hangs 10 s
    env = {
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32",
        "OTEL_BSP_MAX_QUEUE_SIZE": "512",
    }
    with otlp_server("uvicorn", tmp_path, receiver.endpoint, env) as app:
        slowest = serve(app, 700)
        during = app.stats()
        after = app.stats(flush=True)  # the timed-out batch is retried on a new connection
    assert slowest < 1.0
    assert during["queued"] <= 512 + 32
    assert after["flushed"] is True and after["queued"] == 0
    assert accounted(after) == SPANS_PER_REQUEST * 700
    assert after["exported"] == receiver.count() > 0
    assert after["dropped"] > 0  # the queue filled while the first batch hung


@pytest.mark.parametrize("status", [500, 400])
def test_a_refused_batch_is_failed_at_once_and_not_retried(
    receiver: ReceiverProcess, tmp_path: Path, status: int
) -> None:
    receiver.set_fault(Fault(status=status))
    with otlp_server("uvicorn", tmp_path, receiver.endpoint) as app:
        serve(app, 50)
        stats = app.stats(flush=True)
    assert stats["failed"] == SPANS_PER_REQUEST * 50
    assert stats["exported"] == stats["dropped"] == stats["queued"] == 0
    assert [post["status"] for post in receiver.posts()] == [status]  # one try


def test_429_is_retried_after_the_retry_after_it_asked_for(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    receiver.set_fault(Fault(status=429, retry_after="1", times=2))
    with otlp_server("uvicorn", tmp_path, receiver.endpoint) as app:
        serve(app, 20)
        stats = app.stats(flush=True)
    assert stats["exported"] == SPANS_PER_REQUEST * 20
    assert stats["failed"] == stats["dropped"] == 0
    posts = receiver.posts()
    assert [post["status"] for post in posts] == [429, 429, 200]
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(posts)]
    assert min(gaps) >= 0.9
    check_received_once(receiver, 20)


def test_spans_a_receiver_rejects_in_a_partial_success_count_as_failed(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    receiver.set_fault(Fault(rejected=3, times=1))
    with otlp_server("uvicorn", tmp_path, receiver.endpoint) as app:
        serve(app, 10)
        stats = app.stats(flush=True)
    assert (stats["exported"], stats["failed"]) == (SPANS_PER_REQUEST * 10 - 3, 3)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_with_backoff(
    receiver: ReceiverProcess, tmp_path: Path, status: int
) -> None:
    receiver.set_fault(Fault(status=status, times=1))
    with otlp_server("uvicorn", tmp_path, receiver.endpoint) as app:
        serve(app, 5)
        stats = app.stats(flush=True)
    assert stats["exported"] == SPANS_PER_REQUEST * 5
    assert [post["status"] for post in receiver.posts()] == [status, 200]


def test_headers_compression_and_user_agent_from_the_environment(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=s%20cret,X-Tenant=7",
    }
    with otlp_server("uvicorn", tmp_path, receiver.endpoint, env) as app:
        serve(app, 3)
        app.stats(flush=True)
    (post,) = receiver.posts()
    headers = post["headers"]
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["api-key"] == "s cret" and headers["x-tenant"] == "7"
    assert headers["user-agent"].startswith("hooktel/")
    check_received_once(receiver, 3)


@pytest.mark.parametrize("pure", ["0", "1"], ids=["native-or-built", "HOOKTEL_PURE_PYTHON=1"])
def test_pure_python_forces_the_python_encoder_with_the_same_spans(
    receiver: ReceiverProcess, tmp_path: Path, pure: str
) -> None:
    env = {"HOOKTEL_PURE_PYTHON": pure}
    with otlp_server("uvicorn", tmp_path, receiver.endpoint, env) as app:
        serve(app, 10)
        stats = app.stats(flush=True)
    built = importlib.util.find_spec("hooktel.otel.export.encoder") is not None
    assert stats["native"] is (pure == "0" and built)
    spans = receiver.spans()
    server = [s for s in spans if s["name"] == "GET /work"]
    assert len(server) == 10
    assert server[0]["attributes"]["url.path"] == "/work"
    assert server[0]["resource"]["service.name"] == "otlp-app"
    assert server[0]["scope"] == "hooktel.otel"
    child = [s for s in spans if s["name"] == "work"]
    assert {s["parent_span_id"] for s in child} == {s["span_id"] for s in server}
