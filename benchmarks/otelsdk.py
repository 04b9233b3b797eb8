"""The one OpenTelemetry SDK setup every traced variant uses.

`TracerProvider()` (default sampler, resource and limits) with one
`BatchSpanProcessor`, and for the metrics variants a `MeterProvider` with one
periodic reader. By default its exporter drops what it is given, so
export cost is not counted; the OTLP variant and the span-count step pass the
real OTLP/HTTP exporter instead. A provider is shut down when its
`ExitStack` closes (a server process closes its stack at exit), never by the
SDK's own `atexit` hook, so in-process steps can make and drop many of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

_live: list[TracerProvider] = []  # providers whose stack is still open


class DropExporter(SpanExporter):
    """Takes every batch and keeps nothing; counts the spans it was handed."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def tracer_provider(
    stack: ExitStack,
    exporter: SpanExporter | None = None,
    **processor_options: Any,
) -> TracerProvider:
    """A `TracerProvider` with a `BatchSpanProcessor(exporter, **processor_options)`."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter or DropExporter(), **processor_options))
    _live.append(provider)
    stack.callback(_shutdown, provider)
    return provider


def _shutdown(provider: TracerProvider) -> None:
    _live.remove(provider)
    provider.shutdown()


METRIC_EXPORT_INTERVAL_MS = 5000
"""Shorter than the SDK's default minute, so a load run pays for collections too."""


class DropMetricExporter(MetricExporter):
    """Takes every collection and keeps nothing; counts the data points it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.points = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        for resource in metrics_data.resource_metrics:
            for scope in resource.scope_metrics:
                self.points += sum(len(m.data.data_points) for m in scope.metrics)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def meter_provider(stack: ExitStack) -> MeterProvider:
    """A `MeterProvider` whose periodic reader collects every 5 s into a dropping exporter."""
    reader = PeriodicExportingMetricReader(
        DropMetricExporter(), export_interval_millis=METRIC_EXPORT_INTERVAL_MS
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    stack.callback(provider.shutdown)
    return provider


def flush_all() -> None:
    """Export everything queued so far (memory checkpoints must not count the queue)."""
    for provider in _live:
        provider.force_flush()


@contextmanager
def environ(name: str, value: str) -> Iterator[None]:
    """`os.environ[name] = value` for the duration (the SDK reads some settings at setup)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous
