"""Log correlation: the current span's ids on `logging` records, structlog events and loguru.

    from hooktel.otel import LoggingInstrumentation
    LoggingInstrumentation().instrument(inject_trace_context=True)

`LoggingInstrumentation` stamps what contrib's `opentelemetry-instrumentation-logging`
stamps, with its names, defaults and switches (`inject_trace_context`,
`set_logging_format`, `OTEL_PYTHON_LOG_CORRELATION`, `OTEL_PYTHON_LOG_FORMAT`,
`OTEL_PYTHON_LOG_LEVEL`, `log_hook`), so formats and dashboards written for contrib keep
working; it does not install contrib's OpenTelemetry logs handler. It costs less per
record: the current span is read from the context variable itself, and the four fields
of the last span context a record was made in are kept, ready to copy, so the many
records of one span format its ids once.

`structlog_processor` and `loguru_patcher` stamp the fields OpenTelemetry's "trace
context in non-OTLP log formats" names: `trace_id`, `span_id`, `trace_flags`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from . import _sdk

__all__ = [
    "DEFAULT_LOGGING_FORMAT",
    "LoggingInstrumentation",
    "loguru_patcher",
    "structlog_processor",
]

# Contrib's names, values and defaults (opentelemetry.instrumentation.logging).
DEFAULT_LOGGING_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
    "resource.service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s] - %(message)s"
)
OTEL_PYTHON_LOG_CORRELATION = "OTEL_PYTHON_LOG_CORRELATION"
OTEL_PYTHON_LOG_FORMAT = "OTEL_PYTHON_LOG_FORMAT"
OTEL_PYTHON_LOG_LEVEL = "OTEL_PYTHON_LOG_LEVEL"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

LogHook = Callable[[trace.Span, logging.LogRecord], None]
Factory = Callable[..., logging.LogRecord]

# The current context (a mapping holding the current span): read from its variable where
# the runtime context is the default one, a third of `trace.get_current_span()`'s cost.
_var = _sdk.context_var()
_current_context: Callable[[], Mapping[str, Any]] = (
    _var.get if _var is not None else context_api.get_current
)
_SPAN_KEY = _sdk.SPAN_KEY


def _current_span_context() -> SpanContext | None:
    """The current span's context, or None outside a span (or in an invalid one)."""
    span = _current_context().get(_SPAN_KEY)
    if span is None:
        return None
    ctx: SpanContext = span.get_span_context()
    return None if ctx == INVALID_SPAN_CONTEXT else ctx


def _service_name(provider: Any) -> str:
    """Contrib's: the provider's `service.name`, "" for a provider without a resource."""
    resource = getattr(provider, "resource", None)
    return str(resource.attributes.get("service.name") or "") if resource else ""


RecordFields = tuple[str, str, bool, str]  # otelSpanID, otelTraceID, otelTraceSampled, ...Name


def record_stamp(service_name: str) -> Callable[[logging.LogRecord], None]:
    """What stamps one record: `otelSpanID`, `otelTraceID`, `otelTraceSampled` and
    `otelServiceName` of the current span, or contrib's defaults outside one (and for a
    span whose context cannot be read: nothing a span does raises into the code that logs).

    The four are set as attributes, one after the other in one order, so CPython keeps
    them in the record's shared-key layout; `__dict__.update` would make every record
    copy its dict (twice the cost). The last span context's four are kept as one tuple,
    replaced whole, so threads that race on it at worst format the ids again.
    """
    outside: RecordFields = ("0", "0", False, service_name)
    last: tuple[SpanContext | None, RecordFields] = (None, outside)

    def stamp(record: logging.LogRecord) -> None:
        nonlocal last
        fields = outside
        try:
            span = _current_context().get(_SPAN_KEY)
            if span is not None:
                ctx = span.get_span_context()
                seen = last
                if ctx is seen[0]:
                    fields = seen[1]
                elif ctx != INVALID_SPAN_CONTEXT:
                    fields = (
                        format(ctx.span_id, "016x"),
                        format(ctx.trace_id, "032x"),
                        ctx.trace_flags.sampled,
                        service_name,
                    )
                    last = (ctx, fields)
        except Exception:
            pass
        (
            record.otelSpanID,
            record.otelTraceID,
            record.otelTraceSampled,
            record.otelServiceName,
        ) = fields

    return stamp


def _leave_unstamped(record: logging.LogRecord) -> None:
    pass


_stamp: Callable[[logging.LogRecord], None] = _leave_unstamped
"""The stamp both factories below call: `_leave_unstamped` while not instrumented, so a
factory that another one wrapped, and that cannot leave the chain, stamps nothing."""


class StampedRecord(logging.LogRecord):
    """The record factory in place of `logging.LogRecord` itself (the usual case): a record
    stamped as it is made, one call less than a factory wrapping the class. Defined here,
    not per instrumentation, so its records pickle (a `QueueHandler` to another process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        logging.LogRecord.__init__(self, *args, **kwargs)
        _stamp(self)


def stamping_factory(previous: Factory) -> Factory:
    """A record factory: `previous`'s record, stamped."""
    if previous is logging.LogRecord:
        return StampedRecord

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _stamp(record)
        return record

    return record_factory


def hook_calling_factory(factory: Factory, log_hook: LogHook) -> Factory:
    """`factory`'s record, then `log_hook(span, record)` when a valid span is current; a
    hook that raises costs the hook, not the record (contrib's rule)."""

    def record_factory_with_hook(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            if _current_span_context() is not None:
                log_hook(trace.get_current_span(), record)
        except Exception:
            pass
        return record

    return record_factory_with_hook


class LoggingInstrumentation(BaseInstrumentor):  # type: ignore[misc]
    """Trace context on every `logging` record: `otelTraceID`, `otelSpanID`,
    `otelTraceSampled` and `otelServiceName`, as contrib's logging instrumentation names them.

    `instrument()` options, contrib's: `inject_trace_context=True` stamps the records;
    `set_logging_format=True` (default: `OTEL_PYTHON_LOG_CORRELATION=true`) stamps them
    too and calls `logging.basicConfig(format=..., level=...)` with `logging_format`
    (default: `OTEL_PYTHON_LOG_FORMAT`, else `DEFAULT_LOGGING_FORMAT`) and `log_level`
    (default: `OTEL_PYTHON_LOG_LEVEL`, else INFO); `log_hook(span, record)` runs for each
    record made in a span; `tracer_provider` gives `otelServiceName` (default: the global
    provider's). With none of them, as with contrib, nothing is stamped: this is also the
    `hooktel_logging` entry point, which `opentelemetry-instrument` instruments with no
    options, and `OTEL_PYTHON_LOG_CORRELATION=true` is how it is switched on there.
    """

    _factory: Factory | None = None
    _previous: Factory | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        set_format = kwargs.get(
            "set_logging_format",
            os.environ.get(OTEL_PYTHON_LOG_CORRELATION, "false").lower() == "true",
        )
        if set_format:
            log_format = (
                kwargs.get("logging_format", os.environ.get(OTEL_PYTHON_LOG_FORMAT))
                or DEFAULT_LOGGING_FORMAT
            )
            level = kwargs.get("log_level", LEVELS.get(os.environ.get(OTEL_PYTHON_LOG_LEVEL, "")))
            logging.basicConfig(format=log_format, level=level or logging.INFO)
        inject = bool(set_format or kwargs.get("inject_trace_context", False))
        log_hook = kwargs.get("log_hook")
        if not callable(log_hook):
            log_hook = None
        if not inject and log_hook is None:
            return  # contrib's factory would return each record as made: none is needed
        provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
        previous = factory = logging.getLogRecordFactory()
        if inject:
            global _stamp  # noqa: PLW0603 - one instrumentation (a singleton) per process
            _stamp = record_stamp(_service_name(provider))
            factory = stamping_factory(previous)
        if log_hook is not None:
            factory = hook_calling_factory(factory, log_hook)
        logging.setLogRecordFactory(factory)
        self._previous, self._factory = previous, factory

    def _uninstrument(self, **kwargs: Any) -> None:
        global _stamp  # noqa: PLW0603
        _stamp = _leave_unstamped  # also for a factory of ours that one installed since wraps
        if self._factory is not None and logging.getLogRecordFactory() is self._factory:
            assert self._previous is not None
            logging.setLogRecordFactory(self._previous)
        self._previous = self._factory = None


# -- structlog and loguru: OpenTelemetry's field names for trace context in other log formats

_last_event_fields: tuple[SpanContext | None, dict[str, str]] = (None, {})


def _event_fields() -> dict[str, str] | None:
    """`trace_id`, `span_id` and `trace_flags` (W3C hex, as in `traceparent`) of the
    current span, or None outside one; the last span context's kept, as for records."""
    global _last_event_fields  # noqa: PLW0603 - a one-entry cache, replaced whole
    ctx = _current_span_context()
    if ctx is None:
        return None
    seen = _last_event_fields
    if ctx is seen[0]:
        return seen[1]
    found = {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "trace_flags": format(ctx.trace_flags, "02x"),
    }
    _last_event_fields = (ctx, found)
    return found


def structlog_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the current span's `trace_id`, `span_id` and `trace_flags`
    in the event dict; outside a span, the event as it came."""
    try:
        found = _event_fields()
    except Exception:  # a span whose context cannot be read: the event as it came
        return event_dict
    if found is not None:
        event_dict.update(found)
    return event_dict


def loguru_patcher(record: Any) -> None:
    """A loguru patcher (`logger.configure(patcher=loguru_patcher)`): the current span's
    `trace_id`, `span_id` and `trace_flags` in `record["extra"]`; outside a span, nothing
    (give formats defaults with `configure(extra=...)`)."""
    try:
        found = _event_fields()
    except Exception:  # as in `structlog_processor`
        return
    if found is not None:
        record["extra"].update(found)
