"""The fast span path's ids and span contexts are the ones the SDK's own path makes.

With the SDK's `RandomIdGenerator` the fast path draws the ids itself and builds
the span context without the constructor's checks; with any other generator it
calls the generator. Both are checked against the ordinary path
(`HOOKTEL_OTEL_FAST_PATH=0`) on a real uvicorn server.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from hooktel.asgi import TelemetryMiddleware
from hooktel.otel import HttpInstrumentation
from tests.otel.inprocess import FAST_PATH_ENV, server_spans, uvicorn_thread, wait_until


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Counting(IdGenerator):
    """Ids anyone can predict: 1, 2, 3... for spans, 1000, 1001... for traces."""

    def __init__(self) -> None:
        self._spans = itertools.count(1)
        self._traces = itertools.count(1000)

    def generate_span_id(self) -> int:
        return next(self._spans)

    def generate_trace_id(self) -> int:
        return next(self._traces)


def _one_request(
    monkeypatch: pytest.MonkeyPatch, fast_path: str, provider: TracerProvider, traceparent: str = ""
) -> tuple[trace.SpanContext, trace.SpanContext | None, str]:
    monkeypatch.setenv(FAST_PATH_ENV, fast_path)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()
    instrumentation.instrument(tracer_provider=provider)
    headers = {"traceparent": traceparent} if traceparent else {}
    try:
        with uvicorn_thread(TelemetryMiddleware(hello)) as port:
            response = httpx.get(f"http://127.0.0.1:{port}/", headers=headers)
        (span,) = wait_until(lambda: server_spans(exporter), "the server span")
    finally:
        instrumentation.uninstrument()
        provider.shutdown()
    return span.context, span.parent, response.headers["traceparent"]


def _scripted_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """`random.getrandbits` answering each width with 0 first (drawn again), then fixed values."""
    draws: dict[int, Iterator[int]] = {
        128: iter([0, 0x0AF7651916CD43DD8448EB211C80319C]),
        64: iter([0, 0xB7AD6B7169203331]),
    }
    real = random.getrandbits
    monkeypatch.setattr(random, "getrandbits", lambda k: next(draws[k]) if k in draws else real(k))


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_random_ids_are_drawn_as_the_sdk_draws_them(
    monkeypatch: pytest.MonkeyPatch, fast_path: str
) -> None:
    _scripted_bits(monkeypatch)
    context, parent, traceparent = _one_request(monkeypatch, fast_path, TracerProvider())
    assert (context.trace_id, context.span_id) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
    )
    assert parent is None
    assert tuple(context) == tuple(trace.SpanContext(*context[:5]))  # what the constructor makes
    assert context.is_valid and not context.is_remote and context.trace_flags.sampled
    flags = f"{int(context.trace_flags):02x}"  # 03 where the SDK sets the random-trace-id flag
    assert traceparent == f"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_a_child_of_a_remote_parent_keeps_its_trace_and_state(
    monkeypatch: pytest.MonkeyPatch, fast_path: str
) -> None:
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext")
    remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    provider = TracerProvider()
    context, parent, traceparent = _one_request(monkeypatch, fast_path, provider, remote)
    assert context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert parent is not None and parent.span_id == 0x00F067AA0BA902B7 and parent.is_remote
    assert tuple(context) == tuple(trace.SpanContext(*context[:5]))
    assert traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_another_id_generator_is_called(monkeypatch: pytest.MonkeyPatch, fast_path: str) -> None:
    provider = TracerProvider(id_generator=Counting())
    context, _, traceparent = _one_request(monkeypatch, fast_path, provider)
    assert (context.trace_id, context.span_id) == (1000, 1)
    assert traceparent == f"00-{1000:032x}-{1:016x}-01"
