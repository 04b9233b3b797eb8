"""Every use hooktel makes of OpenTelemetry's private parts: the seam, in three places.

- `trace`: the tracer, `ReadableSpan`'s fields, attributes, span processors,
  propagators, trace state and the SDK's configurator (the SERVER spans, the
  W3C propagator and the `hooktel_otlp` configurator use it);
- `metrics`: the SDK's metric streams (the HTTP server metrics use it);
- here, what both need: the versions the seam is checked against, and the API's
  context internals (the variable holding the current context, the current
  span's key in it, `SpanContext`'s layout).

Nothing else in hooktel names a private part of OpenTelemetry
(tests/otel/test_sdk_seam.py scans every Python and C source for one).

Versions: checked with opentelemetry-api and -sdk `FLOOR` (requirements-floor.txt),
`MIDDLE` (requirements-middle.txt; `scripts/floor.sh` runs tests/otel at both) and
`NEWEST` (requirements-dev.txt; every other test run). Each module says what
differs in that range and how each difference is met. Outside it, each accessor
degrades rather than fails where it can (what a version lacks is looked up once
and left out; the fast span path and the aggregated metrics turn themselves off
for an SDK laid out otherwise); what cannot degrade is `TraceState._dict`
(`trace.trace_state_entries`) and the SDK configurator's `_configure`.

`BELOW` is the upper bound of the `otel` extra (pyproject.toml): one minor release
past `NEWEST`, so the release the SDK makes next month installs (its private
parts have so far moved only a few at a time, and the probes above catch those),
but not a range the seam was never read against. Moving `NEWEST` means reading
the SDK's changes to every name the modules list, running tests/otel, and moving
`BELOW` with it.
"""

from __future__ import annotations

import contextvars

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY

FLOOR = "1.28.0"
MIDDLE = "1.42.1"
NEWEST = "1.45.2"
BELOW = "1.47"

SPAN_KEY = _SPAN_KEY
"""The context key of the current span (`trace.get_current_span` reads it). All versions."""


def context_var() -> contextvars.ContextVar[Context] | None:
    """The variable holding the current context, or None: read and set directly, it costs a
    third of the API's calls (`trace.get_current_span()`: ~30 ns instead of ~115 ns).

    That is the API's default runtime context, `ContextVarsRuntimeContext`, which keeps it in
    `_current_context` (all versions); with any other (`OTEL_PYTHON_CONTEXT`), None: go
    through the API.
    """
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    if type(runtime).__name__ != "ContextVarsRuntimeContext":
        return None
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, contextvars.ContextVar) else None


def _span_context_is_tuple() -> bool:
    """True when the API's `SpanContext` is the tuple
    `(trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)` its constructor builds
    (all versions so far)."""
    flags, state = TraceFlags(1), TraceState([("k", "v")])
    probe = trace_api.SpanContext(1, 2, False, flags, state)
    return isinstance(probe, tuple) and tuple(probe) == (1, 2, False, flags, state, True)


SPAN_CONTEXT_IS_TUPLE = _span_context_is_tuple()
"""Read at each use: where False, `SpanContext`'s properties are used instead."""
