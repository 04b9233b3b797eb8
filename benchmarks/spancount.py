"""No span lost: N traced requests, exported over OTLP/HTTP to a receiver in another process.

The Starlette app with hooktel `HttpInstrumentation` is driven in-process
(`drivers.DRIVERS`, no server: N requests are exactly N spans, and the
producer runs as fast as the CPU allows, which is the hard case for a queue).
Its `BatchSpanProcessor` sends to `OTLPSpanExporter` and the receiver
(`receiver.py`) counts what it decodes. Run once with a queue sized for the
burst, where the receiver must count exactly N, and once with the SDK's
default queue, where the SDK's own drop accounting must explain the gap.

The SDK's accounting (opentelemetry-sdk 1.45): with
`OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true` and a `meter_provider`, its
batch processor counts every span in the counter
`otel.sdk.processor.span.processed`: without `error.type` when handed to the
exporter, with `error.type=queue_full` when dropped because the queue was
full. It also logs `Queue full, dropping Span.` (WARNING, logger
`opentelemetry.sdk._shared_internal`), at most once per 20 s (its
`DuplicateFilter`), so the log says that spans were dropped, not how many.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from .apps import APPS
from .drivers import DRIVERS
from .otelsdk import environ
from .receiver import receiving
from .results import SpanCountResult
from .variants import hooktel_otel

APP = "starlette"
METRIC = "otel.sdk.processor.span.processed"
METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
SDK_LOGGER = "opentelemetry.sdk._shared_internal"
DEFAULT_QUEUE = 2048  # BatchSpanProcessor's default max_queue_size
DEFAULT_BATCH = 512  # and max_export_batch_size, which must not exceed the queue


class _CountQueueFull(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Queue full"):
            self.count += 1


def _processed(reader: InMemoryMetricReader) -> dict[str, int]:
    """`otel.sdk.processor.span.processed` summed by `error.type` ("" when unset)."""
    totals: dict[str, int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != METRIC:
                    continue
                for point in metric.data.data_points:
                    error = str((point.attributes or {}).get("error.type", ""))
                    totals[error] = totals.get(error, 0) + int(point.value)  # type: ignore[union-attr]
    return totals


def count_spans(requests: int, max_queue_size: int) -> SpanCountResult:
    """Drive `requests` requests, shut the provider down, and count what arrived."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    logs = _CountQueueFull()
    sdk_logger = logging.getLogger(SDK_LOGGER)
    sdk_logger.addHandler(logs)  # also keeps the warning off stderr
    try:
        with receiving() as receiver:
            with ExitStack() as stack:
                spec = APPS[APP]
                with environ(METRICS_ENV, "true"):
                    app = hooktel_otel(
                        spec.kind,
                        exporter=OTLPSpanExporter(endpoint=receiver.endpoint),
                        max_queue_size=max_queue_size,
                        max_export_batch_size=min(DEFAULT_BATCH, max_queue_size),
                        meter_provider=meters,
                    )(spec.factory(), stack)
                call = DRIVERS[spec.interface](app, **spec.driver_options)
                started = time.perf_counter()
                for _ in range(requests):
                    call()
                seconds = time.perf_counter() - started
                flush_started = time.perf_counter()
            flush_seconds = time.perf_counter() - flush_started  # the stack shut it down
            received = receiver.wait_for(requests, timeout=120)
            counts = receiver.counts()
        processed = _processed(reader)
    finally:
        sdk_logger.removeHandler(logs)
        meters.shutdown()
    return SpanCountResult(
        app=APP,
        requests=requests,
        max_queue_size=max_queue_size,
        received=received,
        distinct=counts["distinct_span_ids"],
        sdk_exported=processed.get("", 0),
        sdk_dropped=processed.get("queue_full", 0),
        queue_full_logs=logs.count,
        seconds=seconds,
        flush_seconds=flush_seconds,
    )
