"""A cheaper SERVER span when the provider is the SDK's own.

Most of what one SDK span costs on the request path is re-validating
attributes hooktel built and already knows to be valid, the containers and
locks of the SDK's `Span`, and the generic `Tracer.start_span` plumbing. This
module starts a request span instead (`spans.requestspan_py.RequestSpan`, or its
compiled twin where the extension `spans.requestspan` is built): the whole Span API
with the SDK's semantics, handed to the span processors as the SDK hands its
own spans (`on_start` with the live span, `on_end` with a standard
`ReadableSpan`).

It follows `Tracer.start_span` of the SDK step by step: the sampler is
consulted with the same arguments, a DROP decision gives a
`NonRecordingSpan`, trace flags and trace state come from the decision, span
limits and the resource apply, and `on_start` runs before the handler does.
`FastSpans.for_tracer` returns None (use the ordinary API path) for any
tracer it does not know to behave that way. `HOOKTEL_OTEL_FAST_PATH=0` turns
it off; the test suite runs both ways and compares them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import SpanKind, TraceFlags

from .._sdk import trace as seam
from .requestspan_py import HandlerCalls, RequestSpan, compiled_spans, helpers, span_class

untracked = helpers.untracked

ENV_FAST_PATH = "HOOKTEL_OTEL_FAST_PATH"

# Samplers known to hand back exactly the attributes they were given.
_PASS_THROUGH_SAMPLERS = (
    sampling.StaticSampler,
    sampling.TraceIdRatioBased,
    sampling.ParentBased,
)
_RANDOM_TRACE_ID = seam.RANDOM_TRACE_ID
# The four trace flags a span can start with: _FLAGS[sampled][random trace id].
_FLAGS = (
    (TraceFlags(TraceFlags.DEFAULT), TraceFlags(TraceFlags.DEFAULT | _RANDOM_TRACE_ID)),
    (TraceFlags(TraceFlags.SAMPLED), TraceFlags(TraceFlags.SAMPLED | _RANDOM_TRACE_ID)),
)
# Enum members as plain constants: each `Enum.MEMBER` lookup costs ~80 ns on Python 3.11.
_SERVER = SpanKind.SERVER
_RECORD_AND_SAMPLE = sampling.Decision.RECORD_AND_SAMPLE
_DROP = sampling.Decision.DROP
_DEFAULT_TRACE_STATE = trace_api.DEFAULT_TRACE_STATE
_new_tuple = tuple.__new__


def enabled() -> bool:
    """The fast path is on unless `HOOKTEL_OTEL_FAST_PATH=0`."""
    return os.environ.get(ENV_FAST_PATH, "1").strip() not in ("0", "false", "no", "off")


class FastSpans:
    """Starts SERVER spans of one SDK tracer."""

    def __init__(self, tracer: sdk_trace.Tracer) -> None:
        self._tracer = tracer
        self._trusted_sampler = type(tracer.sampler) in _PASS_THROUGH_SAMPLERS
        self._default_sampler = seam.is_default_sampler(tracer.sampler)
        # What older or newer SDKs may lack, looked up once.
        self._is_enabled = seam.enabled_check(tracer)
        self._metrics: Any = seam.tracer_metrics(tracer)
        self._random_ids = seam.is_trace_id_random(tracer)
        self._bits = seam.random_bits(tracer)
        self._on_ending = on_ending = seam.on_ending(tracer)  # None where the SDK lacks it
        # The compiled twin's spans where it is built: the same calls, the same spans.
        self._span_class: Callable[..., RequestSpan] = compiled_spans(
            tracer, on_ending
        ) or span_class(tracer, on_ending)

    @classmethod
    def for_tracer(cls, tracer: trace_api.Tracer) -> FastSpans | None:
        """A fast path for `tracer`, or None when it is not an SDK tracer this one knows."""
        real = seam.sdk_tracer(tracer)
        return None if real is None else cls(real)

    def start(
        self,
        name: str,
        parent: Context,
        attributes: dict[str, Any],
        start_time: int,
    ) -> trace_api.Span:
        tracer = self._tracer
        parent_context: trace_api.SpanContext | None = trace_api.get_current_span(
            parent
        ).get_span_context()
        if self._is_enabled is not None and not self._is_enabled():
            return trace_api.NonRecordingSpan(
                context=parent_context or trace_api.INVALID_SPAN_CONTEXT
            )
        bits = self._bits
        if parent_context is None or not parent_context.is_valid:
            parent_context = None
            trace_id = (
                tracer.id_generator.generate_trace_id()
                if bits is None
                else bits(128) or _redraw(bits, 128)
            )
            random_trace_id = self._random_ids
        else:
            trace_id = parent_context.trace_id
            random_trace_id = bool(parent_context.trace_flags & _RANDOM_TRACE_ID)
        if self._default_sampler:  # its decision, without the call: see seam.is_default_sampler
            sampled = parent_context is None or parent_context.trace_flags.sampled
            trace_state = None if parent_context is None else parent_context.trace_state
            decided = _RECORD_AND_SAMPLE if sampled else _DROP
        else:
            decision = tracer.sampler.should_sample(parent, trace_id, name, _SERVER, attributes, ())
            decided, trace_state = decision.decision, decision.trace_state
            sampled = decided is _RECORD_AND_SAMPLE
        flags = _FLAGS[sampled][random_trace_id]
        # The span context holds values only: out of the collector's care (see `untracked`).
        if bits is None:
            context = untracked(
                trace_api.SpanContext(
                    trace_id, tracer.id_generator.generate_span_id(), False, flags, trace_state
                )
            )
        else:  # both ids valid by construction: the tuple the constructor would build
            context = untracked(
                _new_tuple(
                    trace_api.SpanContext,
                    (
                        trace_id,
                        bits(64) or _redraw(bits, 64),
                        False,  # is_remote
                        flags,
                        _DEFAULT_TRACE_STATE if trace_state is None else trace_state,
                        True,  # is_valid
                    ),
                )
            )
        metrics = self._metrics
        record_end = metrics.start_span(parent_context, decided) if metrics else None
        if decided is _DROP:
            return trace_api.NonRecordingSpan(context=context)
        if self._trusted_sampler or self._default_sampler:
            span = self._span_class(name, context, parent_context, attributes, record_end)
        else:
            span = self._span_class(name, context, parent_context, {}, record_end)
            span.set_attributes(decision.attributes)  # the sampler may have changed them
        span.start(start_time, parent)
        return span


def _redraw(bits: Callable[[int], int], width: int) -> int:
    """Another random id for one that came out all zero, as `RandomIdGenerator` draws it:
    `bits(width) or _redraw(bits, width)` is its id, without a call in the common case."""
    drawn = bits(width)
    while not drawn:
        drawn = bits(width)
    return drawn


def set_trusted(span: trace_api.Span, attributes: Mapping[str, Any]) -> None:
    """Set attributes hooktel built: without validating them again on a request span."""
    if isinstance(span, HandlerCalls):
        span.set_trusted(attributes)
    else:
        span.set_attributes(attributes)
