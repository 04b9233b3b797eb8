"""The parent context of a server span, from the hook attributes.

With the default W3C propagators the hooks already parsed `traceparent` and
`tracestate`, so the parent is built from `trace.parent.*` and the headers are
not parsed twice. Any other propagator (B3, Jaeger, ...) extracts from the
request headers it declares in `fields`, which the instrument asks the hooks to
capture.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ... import propagation  # a module, read at call time: it imports `_sdk` from here
from ..._registry.instrument import Attributes
from .. import _sdk
from .requestspan_py import helpers

untracked = helpers.untracked

_BAGGAGE_KEY = "http.request.header.baggage"
_PREFIX = "http.request.header."
_EMPTY = Context()  # immutable: the parent of every request that brings no context


def _members(textmap: TextMapPropagator) -> list[TextMapPropagator]:
    inner = _sdk.composite_members(textmap)
    if inner is None:
        return [textmap]
    return [member for propagator in inner for member in _members(propagator)]


class ParentExtractor:
    """Builds parent contexts the cheapest way the configured propagators allow."""

    def __init__(self, get_textmap: Callable[[], TextMapPropagator]) -> None:
        self._get_textmap = get_textmap
        self._configure(get_textmap())

    def _configure(self, textmap: TextMapPropagator) -> None:
        self._textmap = textmap
        members = _members(textmap)
        w3c = (TraceContextTextMapPropagator, propagation.TraceContextPropagator)
        self._w3c = all(isinstance(m, (*w3c, W3CBaggagePropagator)) for m in members)
        self._baggage = any(isinstance(m, W3CBaggagePropagator) for m in members)
        if self._w3c:
            self.header_names: tuple[str, ...] = ("baggage",) if self._baggage else ()
        else:
            self.header_names = tuple(dict.fromkeys(f.lower() for f in textmap.fields))

    def extract(self, attrs: Attributes) -> Context:
        textmap = self._get_textmap()
        if textmap is not self._textmap:
            self._configure(textmap)
        if not self._w3c:
            carrier = {
                name: list(attrs[_PREFIX + name])
                for name in self.header_names
                if _PREFIX + name in attrs
            }
            return textmap.extract(carrier, context=Context())
        ctx = _EMPTY
        trace_id = attrs.get("trace.parent.trace_id")
        if trace_id is not None:
            parent = propagation.span_context_from_parent(
                trace_id,
                attrs["trace.parent.span_id"],
                attrs["trace.parent.trace_flags"],
                attrs.get("trace.parent.trace_state"),
            )
            # Values only, kept by the span until it is exported: see `untracked`.
            untracked(parent.trace_state)
            untracked(parent)
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent), ctx)
        if self._baggage and _BAGGAGE_KEY in attrs:
            ctx = W3CBaggagePropagator().extract({"baggage": list(attrs[_BAGGAGE_KEY])}, ctx)
        return ctx
