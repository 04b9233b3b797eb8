"""The request span a handler gets under a real server: the compiled one where it is built.

`HttpInstrumentation` on the SDK's provider starts a request span on the fast path:
the compiled span (`requestspan_py.CompiledRequestSpan`) where the extension
`hooktel.otel.spans.requestspan` runs, its Python twin `RequestSpan` under
`HOOKTEL_PURE_PYTHON=1`. Either way the handler has the whole Span API on the
current span, a processor's `on_start` sees the SDK's read interface, and the
exported span is a genuine `ReadableSpan` with what the handler added.
"""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import Status, StatusCode

import hooktel
from hooktel.asgi import TelemetryMiddleware
from hooktel.otel.spans import requestspan_py
from tests.otel.inprocess import server_spans, traced, uvicorn_thread, wait_until


class SeesStart(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[tuple[Any, ...]] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append((span.name, span.kind, isinstance(span, ReadableSpan), span.parent))


def test_the_handler_gets_the_compiled_span_where_it_is_built() -> None:
    seen: list[Any] = []
    tracers: list[trace.Tracer] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        span = trace.get_current_span()
        seen.append(type(span).__mro__)
        seen.append((isinstance(span, trace.Span), type(span.get_span_context())))
        span.set_attribute("handler.attribute", 7)
        span.add_event("handler.event", {"n": 1})
        span.set_status(Status(StatusCode.OK))
        with tracers[0].start_as_current_span("inner") as inner:
            seen.append(inner.parent.span_id == span.get_span_context().span_id)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    seeing = SeesStart()
    with traced("1") as (provider, exporter):
        provider.add_span_processor(seeing)
        tracers.append(provider.get_tracer("handler"))
        with uvicorn_thread(TelemetryMiddleware(app)) as port:
            response = httpx.get(f"http://127.0.0.1:{port}/span")
        assert response.status_code == 200
        (server,) = wait_until(lambda: server_spans(exporter), "the server span")

    compiled = hooktel.NATIVE and requestspan_py.CompiledRequestSpan is not None
    expected = requestspan_py.CompiledRequestSpan if compiled else requestspan_py.RequestSpan
    mro, api, child = seen
    assert expected in mro
    assert api == (True, trace.SpanContext)
    assert child is True
    assert type(server) is ReadableSpan
    assert server.attributes["handler.attribute"] == 7
    assert [(event.name, dict(event.attributes)) for event in server.events] == [
        ("handler.event", {"n": 1})
    ]
    assert server.status.status_code is StatusCode.OK
    assert ("GET", trace.SpanKind.SERVER, True, None) in seeing.started
