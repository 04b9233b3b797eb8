"""The one OpenTelemetry SDK setup every traced variant uses.

`TracerProvider()` (default sampler, resource and limits) with one
`BatchSpanProcessor`. By default its exporter drops what it is given, so
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
