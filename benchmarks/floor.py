"""`sdk-floor`: the least any OpenTelemetry-SDK-backed server instrumentation must do.

A reference for the benchmark, not a product: it shows which throughput ratios
are reachable at all once one SERVER span per request goes through the SDK's
sampler and span processor. Whatever an instrumentation adds (hook points,
header parsing and propagation, semantic-convention work, error handling,
header capture, metrics) comes on top of this. Per request it does only what
the SDK's rules mandate for a sampled span:

- a few start attributes, read straight from the request (no header parsing);
- `sampler.should_sample(...)` with a fresh `Context()` as the parent;
- a `SpanContext` with ids from the tracer's id generator, flags sampled, and
  the trace state the sampler decided;
- a trivial span (a `NonRecordingSpan` that says it records) made current
  while the app runs, then `span_processor.on_start(span, parent_context=...)`;
- a `traceparent` response header;
- at the end of the response, the status code added to the attributes and
  `span_processor.on_end(ReadableSpan(...))`.

No error handling beyond the `finally` that detaches the context: when the app
raises, the span is not ended. It assumes what uvicorn and gunicorn give over
TCP (ASGI `server` and `client` set; WSGI `REMOTE_PORT` set).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any, cast

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SCOPE_NAME = "benchmarks.floor"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class _Span(trace.NonRecordingSpan):
    """What `trace.get_current_span()` finds while the app runs: it says it records.

    It is also what `span_processor.on_start` gets (typed as the SDK's `Span`;
    `BatchSpanProcessor.on_start` does not look at it).
    """

    def is_recording(self) -> bool:
        return True


def _sdk_tracer(provider: TracerProvider) -> Tracer:
    return cast(Tracer, provider.get_tracer(SCOPE_NAME))


def _traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def floor_asgi(app: ASGIApp, provider: TracerProvider) -> ASGIApp:
    """`app` with one SERVER span per HTTP request, through `provider`'s sampler and processor."""
    tracer = _sdk_tracer(provider)
    sampler, processor, ids = tracer.sampler, tracer.span_processor, tracer.id_generator
    resource, scope_info = tracer.resource, tracer._instrumentation_scope

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start = time.time_ns()
        method = scope["method"]
        server, client = scope["server"], scope["client"]
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scope["scheme"],
            "url.path": scope["path"],
            "server.address": server[0],
            "server.port": server[1],
            "client.address": client[0],
            "client.port": client[1],
            "network.protocol.version": scope["http_version"],
        }
        parent = Context()
        trace_id = ids.generate_trace_id()
        decision = sampler.should_sample(parent, trace_id, method, SpanKind.SERVER, attrs, ())
        ctx = SpanContext(trace_id, ids.generate_span_id(), False, _SAMPLED, decision.trace_state)
        span = _Span(ctx)
        processor.on_start(span, parent_context=parent)  # type: ignore[arg-type]
        header = (b"traceparent", _traceparent(ctx).encode())

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                attrs["http.response.status_code"] = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                processor.on_end(
                    ReadableSpan(
                        name=method,
                        context=ctx,
                        resource=resource,
                        attributes=attrs,
                        kind=SpanKind.SERVER,
                        start_time=start,
                        end_time=time.time_ns(),
                        instrumentation_scope=scope_info,
                    )
                )
            await send(message)

        token = context_api.attach(context_api.set_value(_SPAN_KEY, span, parent))
        try:
            await app(scope, receive, traced_send)
        finally:
            context_api.detach(token)

    return middleware


class _Body:
    """The app's response iterable; ends the span when the server closes it (PEP 3333)."""

    __slots__ = ("_end", "_result")

    def __init__(self, result: Iterable[bytes], end: Callable[[], None]) -> None:
        self._result = result
        self._end = end

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._end()


def floor_wsgi(app: WSGIApp, provider: TracerProvider) -> WSGIApp:
    """`app` with one SERVER span per request, through `provider`'s sampler and processor.

    The span is current while `app` is called (not while the server iterates
    the response) and ends when the server closes the response.
    """
    tracer = _sdk_tracer(provider)
    sampler, processor, ids = tracer.sampler, tracer.span_processor, tracer.id_generator
    resource, scope_info = tracer.resource, tracer._instrumentation_scope

    def middleware(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = time.time_ns()
        method = environ["REQUEST_METHOD"]
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": environ["wsgi.url_scheme"],
            "url.path": environ["PATH_INFO"],
            "server.address": environ["SERVER_NAME"],
            "server.port": int(environ["SERVER_PORT"]),
            "client.address": environ["REMOTE_ADDR"],
            "client.port": int(environ["REMOTE_PORT"]),
            "network.protocol.version": environ["SERVER_PROTOCOL"].removeprefix("HTTP/"),
        }
        parent = Context()
        trace_id = ids.generate_trace_id()
        decision = sampler.should_sample(parent, trace_id, method, SpanKind.SERVER, attrs, ())
        ctx = SpanContext(trace_id, ids.generate_span_id(), False, _SAMPLED, decision.trace_state)
        span = _Span(ctx)
        processor.on_start(span, parent_context=parent)  # type: ignore[arg-type]
        header = ("traceparent", _traceparent(ctx))

        def traced_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            attrs["http.response.status_code"] = int(status[:3])
            return start_response(status, [*headers, header], exc_info)

        def end() -> None:
            processor.on_end(
                ReadableSpan(
                    name=method,
                    context=ctx,
                    resource=resource,
                    attributes=attrs,
                    kind=SpanKind.SERVER,
                    start_time=start,
                    end_time=time.time_ns(),
                    instrumentation_scope=scope_info,
                )
            )

        token = context_api.attach(context_api.set_value(_SPAN_KEY, span, parent))
        try:
            result = app(environ, traced_start_response)
        finally:
            context_api.detach(token)
        return _Body(result, end)

    return middleware
