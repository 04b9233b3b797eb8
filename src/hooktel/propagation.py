"""W3C Trace Context propagation for OpenTelemetry, to the letter of the spec.

`TraceContextPropagator` replaces OpenTelemetry's `TraceContextTextMapPropagator`
(select it with `OTEL_PROPAGATORS=hooktel_tracecontext,baggage`); `hooktel.otel.tracecontext`
holds it and says where it differs from OpenTelemetry's. This module is its public
name and that of the entry point.
"""

from __future__ import annotations

from .otel.tracecontext import (
    KNOWN_TRACE_FLAGS,
    TraceContextPropagator,
    W3CTraceState,
    parse_tracestate,
    span_context_from_parent,
)

__all__ = [
    "KNOWN_TRACE_FLAGS",
    "TraceContextPropagator",
    "W3CTraceState",
    "parse_tracestate",
    "span_context_from_parent",
]
