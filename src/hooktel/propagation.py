"""W3C Trace Context propagation for OpenTelemetry, to the letter of the spec.

`TraceContextPropagator` replaces OpenTelemetry's `TraceContextTextMapPropagator`
(select it with `OTEL_PROPAGATORS=hooktel_tracecontext,baggage`). It differs
where OpenTelemetry's departs from https://www.w3.org/TR/trace-context-2/:

- two `traceparent` headers restart the trace instead of continuing the first;
- `tracestate` keys follow the Level 2 grammar, so `1abc`, `foo@` or
  `tenant@a-long-vendor-name` survive instead of being dropped;
- a `tracestate` key repeated (on one line or across lines) keeps its first
  member, as the W3C test suite expects, instead of losing the whole state;
- a carrier value `None` (or `None` in a list of lines) counts as absent;
- trace flags the spec does not define are cleared, as version `00` requires.

`span_context_from_parent` builds the same parent from the hook layer's
already-parsed `trace.parent.*` attributes, so both paths share one set of rules:
`hooktel._http.traceparent` for `traceparent` and `hooktel._http.tracestate` for `tracestate`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators import textmap
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from ._http import tracestate as _tracestate
from ._http.traceparent import parse_traceparent
from .otel._sdk import trace_state_entries
from .otel.spans.requestspan_py import KNOWN_TRACE_FLAGS, helpers

__all__ = [
    "KNOWN_TRACE_FLAGS",
    "TraceContextPropagator",
    "W3CTraceState",
    "parse_tracestate",
    "span_context_from_parent",
]

_logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


class W3CTraceState(TraceState):
    """A `TraceState` whose keys follow the Level 2 grammar, not OpenTelemetry's older one.

    OpenTelemetry validates keys against the Level 1 simple/multi-tenant split,
    so a valid member such as `1abc=x` or `foo@=x` would vanish on the way
    through. This subclass validates with `hooktel._http.tracestate` instead and
    keeps doing so in `add`, `update` and `delete` (the base class would build
    a plain `TraceState` and drop those members again). Everything else, from
    `to_header()` to the exporters, only reads the mapping and works unchanged.
    """

    def __init__(self, entries: Sequence[tuple[str, str]] | None = None) -> None:
        """Like `TraceState`: invalid pairs and repeated keys are skipped, over 32 is empty."""
        super().__init__()
        if not entries:
            return
        own = trace_state_entries(self)
        if len(entries) > _tracestate.MAX_MEMBERS:
            _logger.warning("tracestate: more than %d members", _tracestate.MAX_MEMBERS)
            return
        for key, value in entries:
            if not _is_valid_pair(key, value):
                _logger.warning("tracestate: invalid member %r=%r", key, value)
            elif key in own:
                _logger.warning("tracestate: repeated key %r", key)
            else:
                own[key] = value

    def add(self, key: str, value: str) -> W3CTraceState:
        """A new state with the pair first; unchanged if invalid, present, or full (as base)."""
        if not _is_valid_pair(key, value) or key in self:
            return self
        if len(self) >= _tracestate.MAX_MEMBERS:
            return self
        return W3CTraceState([(key, value), *self.items()])

    def update(self, key: str, value: str) -> W3CTraceState:
        """A new state with the pair moved first (section 3.5: modified keys go left)."""
        if not _is_valid_pair(key, value):
            return self
        if key not in self and len(self) >= _tracestate.MAX_MEMBERS:
            return self
        rest = [(k, v) for k, v in self.items() if k != key]
        return W3CTraceState([(key, value), *rest])

    def delete(self, key: str) -> W3CTraceState:
        if key not in self:
            return self
        return W3CTraceState([(k, v) for k, v in self.items() if k != key])

    @classmethod
    def from_header(cls, header_list: list[str]) -> W3CTraceState:
        """Like `TraceState.from_header`: the combined lines, or empty when discarded."""
        return cls(_tracestate.parse(_tracestate.combine(header_list)))


def _is_valid_pair(key: Any, value: Any) -> bool:
    return (
        isinstance(key, str)
        and isinstance(value, str)
        and _tracestate.is_valid_key(key)
        and _tracestate.is_valid_value(value)
    )


def parse_tracestate(value: str) -> W3CTraceState | None:
    """The state in a combined `tracestate` value, or None when it must be discarded."""
    members = _tracestate.parse(value)
    return None if members is None else W3CTraceState(members)


def span_context_from_parent(
    trace_id: str, span_id: str, trace_flags: int, trace_state: str | None = None
) -> SpanContext:
    """The remote parent from `traceparent` fields already checked by `parse_traceparent`.

    This is how the server side turns the hook attributes `trace.parent.trace_id`,
    `.span_id`, `.trace_flags` and `.trace_state` (the raw lines joined with
    `,`) into a parent without parsing the headers again. An invalid
    `trace_state` is discarded as a whole; the parent stays.
    """
    state = parse_tracestate(trace_state) if trace_state else None
    return SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(trace_flags & KNOWN_TRACE_FLAGS),
        trace_state=state if state is not None else W3CTraceState(),
    )


class TraceContextPropagator(textmap.TextMapPropagator):
    """Extracts and injects `traceparent` and `tracestate` as the W3C spec says.

    Extract continues the trace only from exactly one valid `traceparent`
    (section 3.2 and the W3C test suite's `test_traceparent_duplicated`); any
    other case returns `context` unchanged, so the next span starts a new trace.
    `tracestate` is read only after a valid `traceparent` (section 3.3).
    """

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        reader: textmap.Getter[Any] = _HEADERS if getter is textmap.default_getter else getter
        parents = _lines(reader.get(carrier, TRACEPARENT))
        if len(parents) != 1:
            return context
        parent = parse_traceparent(parents[0])
        if parent is None:
            return context
        lines = _lines(reader.get(carrier, TRACESTATE))
        span_context = span_context_from_parent(
            parent.trace_id,
            parent.span_id,
            parent.trace_flags,
            _tracestate.combine(lines) if lines else None,
        )
        return trace.set_span_in_context(NonRecordingSpan(span_context), context)

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        """Version `00` from the current span; `tracestate` cut by whole entries if too long."""
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        traceparent = helpers.format_traceparent(
            span_context.trace_id, span_context.span_id, span_context.trace_flags
        )
        setter.set(carrier, TRACEPARENT, traceparent)
        members = _tracestate.truncate(list(span_context.trace_state.items()))
        if members:
            setter.set(carrier, TRACESTATE, _tracestate.format_members(members))

    @property
    def fields(self) -> set[str]:
        return {TRACEPARENT, TRACESTATE}


def _lines(values: object) -> list[str]:
    """The header lines a getter returned, with what is not a line treated as absent.

    Getters and carriers built by hand hand back `None`, a bare string, or a
    list holding `None` (a header that was declared but not set): `None` and
    values that are neither `str` nor `bytes` are absent, `bytes` are latin-1
    as on the wire. Extract then never raises on the shape of a carrier.
    """
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        values = (values,)
    elif not isinstance(values, Iterable):
        return []
    return [
        value if isinstance(value, str) else value.decode("latin-1")
        for value in values
        if isinstance(value, (str, bytes))
    ]


class _HeaderGetter(textmap.Getter[Any]):
    """Every line of a header, whatever the case of its name (sections 3.2.1, 3.3.1).

    OpenTelemetry's default getter asks `carrier.get(key)`, which for
    `http.server`'s `self.headers` (an `email.message.Message`) returns only the
    first line, so a second `traceparent` or `tracestate` line goes unseen.
    Multi-value header objects are asked for all lines; mappings are scanned
    for every key equal to `key` ignoring case.
    """

    def get(self, carrier: Any, key: str) -> list[str] | None:
        for method in ("get_all", "getlist", "get_list"):
            get_all = getattr(carrier, method, None)
            if callable(get_all):
                values = get_all(key)
                lines = [
                    v.decode("latin-1") if isinstance(v, bytes) else str(v)
                    for v in values or ()
                    if v is not None
                ]
                return lines or None
        if not isinstance(carrier, Mapping):
            return textmap.default_getter.get(carrier, key)
        found: list[Any] = []
        for name, value in carrier.items():
            if isinstance(name, str) and name.lower() == key:
                found.extend(_lines(value))
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        return list(carrier.keys())


_HEADERS = _HeaderGetter()
