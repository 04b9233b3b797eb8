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

from .. import _native
from .._errors import report_hook_error
from .._headers import REDACTED
from .._instrument import Attributes
from .._traceparent import format_traceparent
from . import _fastpath
from ._borrowed import BorrowedSpan
from ._config import Config
from ._fastpath import FastSpans
from ._parent import ParentExtractor
from ._sdk import restore_context, span_attacher
from ._semconv import with_old_names

# Keys that exist for instruments, not for spans: the span has its own ids and
# timestamps, and url.full is a client-span attribute.
_HOOK_ONLY = frozenset(
    {
        "operation.id",
        "operation.timestamp",
        "operation.duration",
        "trace.parent.trace_id",
        "trace.parent.span_id",
        "trace.parent.trace_flags",
        "trace.parent.trace_state",
        "url.full",
        "error.message",  # these two go to the exception event
        "exception.stacktrace",
    }
)
_REQUEST_PREFIX = "http.request.header."
_RESPONSE_PREFIX = "http.response.header."


class _Live:
    """One in-flight request: its span, where it started, and the context to restore."""

    __slots__ = ("method", "span", "start_ns", "token")

    def __init__(self, span: trace.Span, start_ns: int, token: object, method: str) -> None:
        self.span = span
        self.start_ns = start_ns
        self.token = token
        self.method = method


class ServerSpans:
    """The four hooks of `HttpInstrumentation`, bound to one tracer and config."""

    def __init__(self, tracer: trace.Tracer, config: Config, name: str, version: str) -> None:
        self._tracer = tracer
        self._config = config
        self._name = name
        self._version = version
        self._live: dict[int, _Live] = {}
        self._old_names = config.old_names
        self._fast_enabled = _fastpath.enabled()
        self._fast: FastSpans | None = None
        self._parents = ParentExtractor(get_global_textmap)
        self._attach = span_attacher()
        extra = set(self._parents.header_names) - set(config.capture_request_headers)
        self._skip = _HOOK_ONLY | {_REQUEST_PREFIX + name for name in extra}
        sanitize = config.sanitize
        self._sanitized = frozenset(
            prefix + name
            for prefix, names in (
                (_REQUEST_PREFIX, config.capture_request_headers),
                (_RESPONSE_PREFIX, config.capture_response_headers),
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
        excluded = self._config.excluded_urls
        if excluded is not None and excluded.search(attrs.get("url.full", "")):
            return
        method = attrs.get("http.request.method", "_OTHER")
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
        token = self._attach(span, parent)
        self._live[op_id] = _Live(span, attrs["operation.timestamp"], token, method)
        if self._config.request_hook is not None:
            self._run_hook("request_hook", self._config.request_hook, span, attrs)

    def borrowed(self, op_id: int) -> BorrowedSpan | None:
        """The span of operation `op_id` as a framework may hold it; None if not traced."""
        live = self._live.get(op_id)
        return BorrowedSpan(live.span) if live is not None else None

    def on_inject(self, op_id: int) -> dict[str, str] | None:
        live = self._live.get(op_id)
        if live is None:
            return None
        ctx = live.span.get_span_context()
        if not ctx.is_valid:
            return None
        value = format_traceparent(ctx.trace_id, ctx.span_id, ctx.trace_flags)
        mode = self._config.response_propagation
        if mode == "traceresponse":
            return {"traceresponse": value}
        if mode == "server-timing":
            return {"server-timing": f'traceparent;desc="{value}"'}
        headers = {"traceparent": value}
        if ctx.trace_state:
            headers["tracestate"] = ctx.trace_state.to_header()
        return headers

    def on_end(self, op_id: int, attrs: Attributes) -> None:
        self._close(op_id, attrs, _mark_response)

    def on_error(self, op_id: int, attrs: Attributes) -> None:
        self._close(op_id, attrs, _mark_error)

    def _close(
        self, op_id: int, attrs: Attributes, mark: Callable[[_Live, Attributes], None]
    ) -> None:
        live = self._live.pop(op_id, None)
        if live is None:
            return
        try:
            span = live.span
            if span.is_recording():
                _fastpath.set_trusted(span, self._span_attributes(attrs))
                route = attrs.get("http.route")
                if route:
                    span.update_name(f"{_method_name(live.method)} {route}")
                mark(live, attrs)
            if self._config.response_hook is not None:
                self._run_hook("response_hook", self._config.response_hook, span, attrs)
            span.end(end_time=_end_time(live, attrs))
        finally:
            restore_context(live.token, live.span)

    def _resolve_fast(self) -> FastSpans | None:
        """The fast path, once the tracer is known to be the SDK's (see `_fastpath`)."""
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


def without_keys_py(mapping: dict[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    """The items of `mapping` whose keys are not in `skip` (its C twin is the core's)."""
    return {key: value for key, value in mapping.items() if key not in skip}


without_keys = without_keys_py if _native.core is None else _native.core.without_keys


def _method_name(method: str) -> str:
    return "HTTP" if method == "_OTHER" else method


def _mark_response(live: _Live, attrs: Attributes) -> None:
    """A 5xx is an error of the server span (a 4xx is the client's, so left unset)."""
    status = attrs.get("http.response.status_code", 0)
    if status >= 500:
        live.span.set_attribute("error.type", str(status))
        live.span.set_status(Status(StatusCode.ERROR))


def _mark_error(live: _Live, attrs: Attributes) -> None:
    error_type = attrs.get("error.type", "_OTHER")
    message = attrs.get("error.message", "")
    event = {"exception.type": error_type, "exception.message": message}
    if "exception.stacktrace" in attrs:
        event["exception.stacktrace"] = attrs["exception.stacktrace"]
    live.span.add_event("exception", event, timestamp=_end_time(live, attrs))
    live.span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))


def _end_time(live: _Live, attrs: Attributes) -> int:
    return live.start_ns + int(attrs.get("operation.duration", 0))
