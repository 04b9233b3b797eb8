"""`OTLPSpanProcessor`'s configuration, its zero-code setup, and the request-span hand-over.

- Arguments first, then the environment variables the stock exporter and
  `BatchSpanProcessor` read, then their defaults; unusable values fall back.
- `OTEL_PYTHON_CONFIGURATOR=hooktel_otlp` under the real `opentelemetry-instrument`
  swaps the stock OTLP exporter for the processor; without it nothing changes.
- hooktel's request span reaches the processor as it is when every processor
  of the provider takes it, and as a `ReadableSpan` copy otherwise; the same
  span is exported either way.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hooktel.otel import HttpInstrumentation, OTLPSpanProcessor
from hooktel.otel.export.config import ExportConfig
from hooktel.otel.spans.requestspan_py import RequestSpan
from tests.otel.inprocess import uvicorn_thread, wait_until
from tests.otel.otlp_receiver import OtlpReceiver, receiver_thread

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(sys.executable).with_name("opentelemetry-instrument")


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with receiver_thread() as running:
        yield running


# -- configuration ------------------------------------------------------------------------


def test_defaults_are_the_stock_classes() -> None:
    config = ExportConfig.resolve()
    assert config.endpoint == "http://localhost:4318/v1/traces"
    assert (config.max_queue_size, config.max_export_batch_size) == (2048, 512)
    assert (config.schedule_delay, config.export_timeout, config.timeout) == (5.0, 30.0, 10.0)
    assert config.compression == "none"
    assert dict(config.headers) == {}


def test_the_traces_endpoint_is_used_as_it_is_and_the_base_one_gets_the_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert ExportConfig.resolve().endpoint == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c:9/custom")
    assert ExportConfig.resolve().endpoint == "https://c:9/custom"
    assert ExportConfig.resolve(endpoint="http://arg:1/x").endpoint == "http://arg:1/x"


def test_signal_variables_win_over_the_general_ones_and_arguments_over_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "B=3,c=x%20y")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "4")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "deflate")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")
    config = ExportConfig.resolve(headers={"D": "4"})
    assert dict(config.headers) == {"b": "3", "c": "x y", "d": "4"}
    assert config.timeout == 4.0
    assert config.compression == "gzip"
    assert config.certificate_file == "/ca.pem"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2.5")
    assert ExportConfig.resolve().timeout == 2.5
    assert ExportConfig.resolve(timeout=1, compression="none").timeout == 1.0


def test_batch_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1500")
    config = ExportConfig.resolve()
    assert (config.max_queue_size, config.max_export_batch_size) == (100, 10)
    assert (config.schedule_delay, config.export_timeout) == (0.25, 1.5)
    assert ExportConfig.resolve(max_queue_size=5, max_export_batch_size=3).max_queue_size == 5


def test_unusable_values_fall_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "-5")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")
    with caplog.at_level(logging.WARNING):
        config = ExportConfig.resolve(max_export_batch_size=4096)
    assert (config.max_queue_size, config.schedule_delay) == (2048, 5.0)
    assert config.max_export_batch_size == 2048  # never over the queue
    assert config.compression == "none"
    assert len(caplog.records) == 4


@pytest.mark.parametrize("endpoint", ["localhost:4318", "grpc://c:4317"])
def test_an_endpoint_that_is_not_http_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        ExportConfig.resolve(endpoint=endpoint)


def test_a_header_that_would_split_the_request_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid HTTP header"):
        OTLPSpanProcessor(headers={"x": "1\r\nHost: evil"})


@pytest.mark.parametrize(
    ("rejected", "message"), [(0, ""), (1, ""), (3, "too old"), (2**40, "é" * 200)]
)
def test_a_partial_success_is_read_from_the_response(rejected: int, message: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    from hooktel.otel.export.sender import partial_success

    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = rejected
    response.partial_success.error_message = message
    assert partial_success(response.SerializeToString()) == (rejected, message)
    assert partial_success(b"") == (0, "")
    assert partial_success(b"\x0a\x05\x08") == (0, "")  # truncated: no rejection read


# -- shutdown and flush, in process ---------------------------------------------------------


def test_after_shutdown_spans_are_counted_as_dropped(receiver: OtlpReceiver) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    processor = OTLPSpanProcessor(endpoint=receiver.endpoint)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    tracer.start_span("before").end()
    provider.shutdown()
    tracer.start_span("after").end()
    stats = processor.stats()
    assert (stats.exported, stats.dropped, stats.failed, stats.queued) == (1, 1, 0, 0)
    assert processor.force_flush() is True
    assert [s["name"] for s in receiver.spans] == ["before"]


def test_unsampled_spans_are_not_exported(receiver: OtlpReceiver) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    processor = OTLPSpanProcessor(endpoint=receiver.endpoint)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("x").end()
    assert processor.force_flush()
    assert processor.stats().exported == 0
    provider.shutdown()


def test_a_span_the_encoder_cannot_encode_fails_alone(receiver: OtlpReceiver) -> None:
    processor = OTLPSpanProcessor(endpoint=receiver.endpoint)
    from opentelemetry.trace import SpanContext, TraceFlags

    good = ReadableSpan("good", SpanContext(1, 2, False, TraceFlags(1)), start_time=1, end_time=2)
    bad = ReadableSpan("bad", SpanContext(1, 3, False, TraceFlags(1)), start_time=-1, end_time=2)
    for span in (good, bad, good):
        processor.on_end(span)
    assert processor.force_flush()
    stats = processor.stats()
    assert (stats.exported, stats.failed) == (2, 1)
    assert [s["name"] for s in receiver.spans] == ["good", "good"]
    processor.shutdown()


# -- the request span's hand-over -----------------------------------------------------------


class _Recording(OTLPSpanProcessor):
    """Remembers the type of every span it is handed."""

    handed: list[type]

    def on_end(self, span: ReadableSpan) -> None:
        self.handed.append(type(span))
        super().on_end(span)


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


@pytest.mark.parametrize("alone", [True, False], ids=["only-processor", "with-another"])
def test_the_request_span_is_handed_over_as_it_is_only_when_every_processor_takes_it(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, alone: bool
) -> None:
    from hooktel.asgi import TelemetryMiddleware

    monkeypatch.setenv("HOOKTEL_OTEL_FAST_PATH", "1")
    provider = TracerProvider(shutdown_on_exit=False)
    processor = _Recording(endpoint=receiver.endpoint)
    processor.handed = []
    provider.add_span_processor(processor)
    memory = InMemorySpanExporter()
    if not alone:
        provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()
    instrumentation.instrument(tracer_provider=provider)
    try:
        with uvicorn_thread(TelemetryMiddleware(_hello)) as port:
            assert httpx.get(f"http://127.0.0.1:{port}/x?y=1").status_code == 200
    finally:
        instrumentation.uninstrument()
    assert processor.force_flush()
    (handed,) = processor.handed
    assert issubclass(handed, RequestSpan) if alone else handed is ReadableSpan
    (span,) = wait_until(lambda: receiver.spans, "the exported span")
    assert span["name"] == "GET"
    assert span["attributes"]["url.path"] == "/x"
    assert span["attributes"]["url.query"] == "y=1"
    assert span["scope"] == "hooktel.otel"
    provider.shutdown()


# -- zero code ------------------------------------------------------------------------------


def _launch(env: dict[str, str], *command: str) -> subprocess.Popen[str]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_SERVICE_NAME": "zero-code",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.Popen(
        [str(LAUNCHER), sys.executable, *command],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "native"),
    [
        ({"OTEL_PYTHON_CONFIGURATOR": "hooktel_otlp"}, True),
        (
            {
                "OTEL_PYTHON_CONFIGURATOR": "hooktel_otlp",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",  # what opentelemetry-distro defaults to
            },
            True,
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, False),
    ],
    ids=["configurator", "configurator-over-distro-defaults", "stock-unchanged"],
)
def test_the_launcher_exports_natively_with_one_variable(
    receiver: OtlpReceiver, env: dict[str, str], native: bool
) -> None:
    base = receiver.endpoint.removesuffix("/v1/traces")
    app = _launch(
        {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": base}, "-m", "tests.otel.apps.zero_code_app"
    )
    with app:
        assert app.stdout is not None
        first = app.stdout.readline()
        assert first.startswith("listening on "), first + (app.stderr.read() if app.stderr else "")
        port = int(first.split()[-1])
        assert httpx.get(f"http://127.0.0.1:{port}/hi").status_code == 200
        app.communicate(timeout=60)  # it exits after one request: the exit sends the span
    (post,) = receiver.posts
    assert post["headers"]["user-agent"].startswith("hooktel/") is native
    (span,) = receiver.spans
    assert (span["name"], span["resource"]["service.name"]) == ("GET", "zero-code")


def test_the_launcher_under_uvicorn_sends_the_queue_when_stopped_with_sigterm(
    receiver: OtlpReceiver,
) -> None:
    """The processor exists before uvicorn starts, so uvicorn's re-raised SIGTERM flushes it."""
    env = {
        "OTEL_PYTHON_CONFIGURATOR": "hooktel_otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "HOOKTEL_BENCH_APP": "starlette",
        "HOOKTEL_BENCH_VARIANT": "bare",
    }
    command = ("-m", "uvicorn", "--factory", "benchmarks.apps:build", "--port", "0")
    app = _launch(env, *command)
    with app:
        assert app.stderr is not None
        port = None
        for line in app.stderr:
            if "Uvicorn running on" in line:
                port = int(line.rsplit(":", 1)[1].split()[0])
                break
        assert port, "uvicorn did not start"
        for _ in range(5):
            assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        assert receiver.spans == []
        app.send_signal(signal.SIGTERM)
        app.communicate(timeout=60)
    assert app.returncode == -signal.SIGTERM  # it still dies of the signal it was sent
    assert len(receiver.spans) == 5
