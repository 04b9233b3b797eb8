"""Turns the hooks of one HTTP operation into one OpenTelemetry SERVER span.

Start makes the span current in the request's own context (task or thread),
end and error restore that context, so nothing leaks into the next request
the server runs there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import get_global_textmap
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..._http.headers import REDACTED, REQUEST_HEADER_PREFIX, RESPONSE_HEADER_PREFIX
from ..._http.traceparent import PARENT_KEYS
from ..._registry.errors import report_hook_error
from ..._registry.instrument import Attributes
from .. import _sdk
from .._config import Config
from .._sdk.trace import restore_context, span_attacher
from .._semconv import with_old_names
from . import fastpath
from .borrowed import BorrowedSpan
from .fastpath import FastSpans
from .parent import ParentExtractor
from .requestspan_py import helpers

format_traceparent = helpers.format_traceparent
without_keys = helpers.without_keys

# Keys that exist for instruments, not for spans: the span has its own ids and
# timestamps, and url.full is a client-span attribute.
_HOOK_ONLY = frozenset(
    {
        "operation.id",
        "operation.timestamp",
        "operation.duration",
        *PARENT_KEYS,
        "url.full",
        "error.message",  # these two go to the exception event
        "exception.stacktrace",
    }
)
_WEBSOCKET_SCHEMES = frozenset({"ws", "wss"})


_Live = tuple[trace.Span, int, object, str]
"""One in-flight request: its span, its start time, the context to restore, its method
(`WS` for a WebSocket connection: its span is named `WS {route}`)."""


class ServerSpans:
    """The hooks of `HttpInstrumentation`, bound to one tracer and config."""

    def __init__(self, tracer: trace.Tracer, config: Config, name: str, version: str) -> None:
        self._tracer = tracer
        self._config = config
        self._name = name
        self._version = version
        self._live: dict[int, _Live] = {}
        self._old_names = config.old_names
        self._excluded = config.excluded_urls
        self._request_hook = config.request_hook
        self._response_hook = config.response_hook
        self._plain_traceparent = config.response_propagation == "traceparent"
        self._fast_enabled = fastpath.enabled()
        self._fast: FastSpans | None = None
        self._parents = ParentExtractor(get_global_textmap)
        self._attach = span_attacher()
        extra = set(self._parents.header_names) - set(config.capture_request_headers)
        self._skip = _HOOK_ONLY | {REQUEST_HEADER_PREFIX + name for name in extra}
        sanitize = config.sanitize
        self._sanitized = frozenset(
            prefix + name
            for prefix, names in (
                (REQUEST_HEADER_PREFIX, config.capture_request_headers),
                (RESPONSE_HEADER_PREFIX, config.capture_response_headers),
            )
            for name in names
            if sanitize is not None and sanitize.search(name)
        )

    @property
    def capture_request_headers(self) -> tuple[str, ...]:
        """What the hooks must capture: the user's headers and the propagators' fields."""
        return tuple(
            dict.fromkeys((*self._config.capture_request_headers, *self._parents.header_names))
        )

    def on_start(self, op_id: int, attrs: Attributes) -> None:
        excluded = self._excluded
        if excluded is not None and excluded.search(attrs.get("url.full", "")):
            return
        # A WebSocket connection is named after its protocol: its handshake is always a GET.
        websocket = attrs.get("url.scheme") in _WEBSOCKET_SCHEMES
        method = "WS" if websocket else attrs.get("http.request.method", "_OTHER")
        parent = self._parents.extract(attrs)
        name = _method_name(method)
        span_attrs = self._span_attributes(attrs)
        fast = self._fast or self._resolve_fast()
        if fast is not None:
            span = fast.start(name, parent, span_attrs, attrs["operation.timestamp"])
        else:
            span = self._tracer.start_span(
                name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=span_attrs,
                start_time=attrs["operation.timestamp"],
            )
        self._live[op_id] = (span, attrs["operation.timestamp"], self._attach(span, parent), method)
        if self._request_hook is not None:
            self._run_hook("request_hook", self._request_hook, span, attrs)

    def borrowed(self, op_id: int) -> BorrowedSpan | None:
        """The span of operation `op_id` as a framework may hold it; None if not traced."""
        live = self._live.get(op_id)
        return BorrowedSpan(live[0]) if live is not None else None

    def on_inject(self, op_id: int) -> dict[str, str] | None:
        live = self._live.get(op_id)
        if live is None:
            return None
        ctx = live[0].get_span_context()
        if _sdk.SPAN_CONTEXT_IS_TUPLE:  # its fields without five property calls
            trace_id, span_id, _, flags, state, valid = ctx
        else:
            trace_id, span_id, flags = ctx.trace_id, ctx.span_id, ctx.trace_flags
            state, valid = ctx.trace_state, ctx.is_valid
        if not valid:
            return None
        value = format_traceparent(trace_id, span_id, flags)
        if self._plain_traceparent:
            if state:
                return {"traceparent": value, "tracestate": state.to_header()}
            return {"traceparent": value}
        if self._config.response_propagation == "traceresponse":
            return {"traceresponse": value}
        return {"server-timing": f'traceparent;desc="{value}"'}

    def on_message(self, op_id: int, attrs: Attributes) -> None:
        """A WebSocket message: an INTERNAL span `WS receive`/`WS send` under the
        connection's span, at the moment the app received or sent it."""
        live = self._live.get(op_id)
        if live is None:
            return
        direction = attrs.get("websocket.message.direction")
        at = attrs["operation.timestamp"]
        span = self._tracer.start_span(
            "WS receive" if direction == "received" else "WS send",
            context=trace.set_span_in_context(live[0]),
            kind=SpanKind.INTERNAL,
            attributes=without_keys(attrs, self._skip),
            start_time=at,
        )
        span.end(end_time=at)

    def on_end(self, op_id: int, attrs: Attributes) -> None:
        self._close(op_id, attrs, _mark_response)

    def on_error(self, op_id: int, attrs: Attributes) -> None:
        self._close(op_id, attrs, _mark_error)

    def _close(
        self, op_id: int, attrs: Attributes, mark: Callable[[trace.Span, int, Attributes], None]
    ) -> None:
        live = self._live.pop(op_id, None)
        if live is None:
            return
        span, start_ns, token, method = live
        try:
            end_ns = start_ns + int(attrs.get("operation.duration", 0))
            if span.is_recording():
                fastpath.set_trusted(span, self._span_attributes(attrs))
                route = attrs.get("http.route")
                if route:
                    span.update_name(f"{_method_name(method)} {route}")
                mark(span, end_ns, attrs)
            if self._response_hook is not None:
                self._run_hook("response_hook", self._response_hook, span, attrs)
            span.end(end_time=end_ns)
        finally:
            restore_context(token, span)

    def _resolve_fast(self) -> FastSpans | None:
        """The fast path, once the tracer is known to be the SDK's (see `spans.fastpath`)."""
        if self._fast_enabled:
            self._fast = FastSpans.for_tracer(self._tracer)
        return self._fast

    def _span_attributes(self, attrs: Attributes) -> dict[str, Any]:
        skip, sanitized = self._skip, self._sanitized
        if not sanitized:
            span_attrs = without_keys(attrs, skip)
        else:
            span_attrs = {
                key: ((REDACTED,) if key in sanitized else value)
                for key, value in attrs.items()
                if key not in skip
            }
        return with_old_names(span_attrs, attrs) if self._old_names else span_attrs

    def _run_hook(self, which: str, hook: Any, span: trace.Span, attrs: Mapping[str, Any]) -> None:
        try:
            hook(span, dict(attrs))
        except Exception as exc:
            report_hook_error(which, self._name, self._version, exc)


def _method_name(method: str) -> str:
    return "HTTP" if method == "_OTHER" else method


def _mark_response(span: trace.Span, end_ns: int, attrs: Attributes) -> None:
    """A 5xx is an error of the server span (a 4xx is the client's, so left unset)."""
    status = attrs.get("http.response.status_code", 0)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


def _mark_error(span: trace.Span, end_ns: int, attrs: Attributes) -> None:
    error_type = attrs.get("error.type", "_OTHER")
    message = attrs.get("error.message", "")
    event = {"exception.type": error_type, "exception.message": message}
    if "exception.stacktrace" in attrs:
        event["exception.stacktrace"] = attrs["exception.stacktrace"]
    span.add_event("exception", event, timestamp=end_ns)
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
