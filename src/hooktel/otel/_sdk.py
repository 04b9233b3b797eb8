"""Every use of OpenTelemetry's private internals by `hooktel.otel`, in one place.

Tested with opentelemetry-api and opentelemetry-sdk 1.45.2. Each function
checks the shape it relies on before relying on it, and says what it returns
when the shape is not there, so a newer or older SDK degrades to the public
API (slower, never wrong) instead of failing.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
from opentelemetry.sdk.metrics._internal.aggregation import (
    _DropAggregation,
    _ExplicitBucketHistogramAggregation,
)
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlignedHistogramBucketExemplarReservoir,
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.trace.propagation import _SPAN_KEY

# =====================================================================================
# Metrics (issue 9; used by `_metrics`, `_histograms`, `_streamtable`): histograms
# aggregated by hooktel and handed to the SDK when it collects.
#
# The SDK keeps, per metric reader, one `MetricReaderStorage`; in it, per instrument,
# one `_ViewInstrumentMatch` per matching view (a metric *stream*); in that, per
# attribute set, one aggregation. `Histogram.record()` builds a `Measurement`, asks
# the exemplar filter, and walks that whole tree for every measurement. hooktel
# aggregates on its side instead, one table per stream, and right before the SDK
# collects a stream, adds what it aggregated to the stream's aggregations, as if each
# measurement had been recorded there: bucket counts, sum, min and max, the start
# time the first measurement would have given, and the exemplar each bucket's
# reservoir would hold.
#
# Below: first what the metrics need of the API's internals (the providers' stand-ins,
# the current span's context variable and `SpanContext`'s layout), then the SDK's
# metric internals.
# =====================================================================================

# -- the API's internals --------------------------------------------------------------


def is_configured(provider: MeterProvider) -> bool:
    """False for the API's stand-ins: the global default before any provider is set, no-op."""
    return not isinstance(provider, (_ProxyMeterProvider, NoOpMeterProvider))


SPAN_KEY = _SPAN_KEY
"""The context key of the current span (`trace.get_current_span` reads it)."""


def context_var() -> contextvars.ContextVar[Context] | None:
    """The variable holding the current context, or None: read directly, it costs a third
    of `trace.get_current_span()` (~30 ns instead of ~115 ns).

    That is the default runtime context (contextvars); with any other
    (`OTEL_PYTHON_CONTEXT`), None: go through the API.
    """
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    if type(runtime).__name__ != "ContextVarsRuntimeContext":
        return None
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, contextvars.ContextVar) else None


class _NoLayout(tuple[Any, ...]):
    """Stands for a `SpanContext` whose layout is not the known one: matches no object."""


def span_context_layout() -> tuple[type, int]:
    """(`SpanContext`, the index of its trace flags in it): `SpanContext` is a tuple, and
    the compiled recorder reads the flags there instead of through the property.

    A `SpanContext` laid out otherwise gives a type no object has (the property is used).
    """
    probe = trace_api.SpanContext(1, 2, False, trace_api.TraceFlags(1))
    for index, item in enumerate(probe if isinstance(probe, tuple) else ()):
        if item is probe.trace_flags:
            return trace_api.SpanContext, index
    return _NoLayout, 0


# -- the SDK's metric internals ------------------------------------------------------

Attributes = dict[str, Any]

OVERFLOW_ATTRIBUTES: Attributes = {"otel.metric.overflow": True}
"""The attribute set of the point the SDK folds attribute sets into past the cardinality limit."""

# The fields of an explicit-bucket aggregation that `_feed` reads and writes.
_AGGREGATION_FIELDS = (
    "_lock",
    "_value",
    "_sum",
    "_min",
    "_max",
    "_boundaries",
    "_record_min_max",
    "_reservoir",
    "_start_time_unix_nano",
    "_previous_collection_start_nano",
)
_MATCH_FIELDS = (
    "_lock",
    "_view",
    "_aggregation",
    "_attributes_aggregation",
    "_cardinality_limit",
    "_reset_on_collect",
    "_previous_collection_start_nanos",
    "_get_or_create_aggregation",
    "collect",
)


class ExemplarRule:
    """Which measurements the provider's exemplar filter lets exemplars be made of."""

    TRACE_BASED = "trace_based"
    ALWAYS_ON = "always_on"
    ALWAYS_OFF = "always_off"
    CUSTOM = "custom"


def exemplar_filter(provider: Any) -> tuple[str, Any]:
    """(rule, filter): one of `ExemplarRule`, and the filter object for `CUSTOM`."""
    config = getattr(provider, "_sdk_config", None)
    found = getattr(config, "exemplar_filter", None)
    kind = type(found)
    if kind is TraceBasedExemplarFilter:
        return ExemplarRule.TRACE_BASED, found
    if kind is AlwaysOnExemplarFilter:
        return ExemplarRule.ALWAYS_ON, found
    if kind is AlwaysOffExemplarFilter:
        return ExemplarRule.ALWAYS_OFF, found
    if isinstance(found, ExemplarFilter):
        return ExemplarRule.CUSTOM, found
    return ExemplarRule.TRACE_BASED, None


@dataclass(frozen=True)
class Stream:
    """One metric stream of a histogram: a view matched to it in one reader's storage."""

    boundaries: tuple[float, ...]
    record_min_max: bool
    attribute_keys: frozenset[str] | None
    """Only these attributes identify a point (`View(attribute_keys=...)`); None: all."""
    cardinality_limit: int
    resets_on_collect: bool
    """Delta temporality: the SDK forgets every attribute set when it collects."""
    match: Any


@dataclass
class Series:
    """What hooktel aggregated for one attribute set of one stream since the last collection.

    `exemplars` holds, per bucket, the last measurement offered for it:
    `(value, time_unix_nano, attributes, span_context or None)`, or None.
    """

    attributes: Attributes
    counts: list[int]
    sum: float
    min: float
    max: float
    first_ns: int
    exemplars: list[tuple[float, int, Attributes, Any] | None] | None


def histogram_streams(instrument: Any) -> list[Stream] | None:
    """The streams of an SDK histogram in every reader, or None where hooktel cannot
    aggregate exactly as the SDK would (then the caller records with `instrument.record`).

    None for: a histogram that is not the SDK's; a view (or a reader's preferred
    aggregation) that aggregates it other than with explicit buckets or drops it;
    an exemplar reservoir other than the SDK's default for explicit buckets (the
    others sample at random); an SDK whose internals look different.
    Dropped streams are left out: nothing is recorded for them.
    """
    storages = _reader_storages(instrument)
    if storages is None:
        return None
    streams = []
    for storage in storages:
        get_matches = getattr(storage, "_get_or_init_view_instrument_match", None)
        if get_matches is None:
            return None
        for match in get_matches(instrument):
            if not all(hasattr(match, name) for name in _MATCH_FIELDS):
                return None
            aggregation = match._aggregation
            if type(aggregation) is _DropAggregation:
                continue
            if type(aggregation) is not _ExplicitBucketHistogramAggregation or not all(
                hasattr(aggregation, name) for name in _AGGREGATION_FIELDS
            ):
                return None
            if type(aggregation._reservoir) is not AlignedHistogramBucketExemplarReservoir:
                return None
            keys = match._view._attribute_keys
            streams.append(
                Stream(
                    boundaries=tuple(aggregation._boundaries),
                    record_min_max=bool(aggregation._record_min_max),
                    attribute_keys=None if keys is None else frozenset(keys),
                    cardinality_limit=int(match._cardinality_limit),
                    resets_on_collect=bool(match._reset_on_collect),
                    match=match,
                )
            )
    return streams


def _reader_storages(instrument: Any) -> Iterable[Any] | None:
    if type(instrument) is not _Histogram:
        return None
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    return None if storages is None else list(storages.values())


def watch_readers(instrument: Any, changed: Callable[[], None]) -> None:
    """Call `changed()` after a metric reader is added to or removed from the provider."""
    consumer = instrument._measurement_consumer
    for name in ("add_metric_reader", "remove_metric_reader"):
        original = getattr(consumer, name)

        def wrapped(reader: Any, original: Callable[[Any], None] = original) -> None:
            original(reader)
            changed()

        setattr(consumer, name, wrapped)


def watch_enabled(instrument: Any, changed: Callable[[bool], None]) -> bool:
    """Whether the instrument's meter is enabled now; `changed(enabled)` after a change.

    A `MeterConfigurator` may disable a meter (and enable it again) at run
    time; its instruments then record nothing. The SDK asks on every
    measurement; hooktel is told when the answer changes.
    """
    switch = getattr(instrument, "_meter_config", None)
    if switch is None or not hasattr(switch, "update") or not hasattr(switch, "is_enabled"):
        return True
    original = switch.update

    def update(config: Any) -> None:
        original(config)
        changed(bool(switch.is_enabled))

    switch.update = update
    return bool(switch.is_enabled)


# A stream's collection is wrapped once; the function it calls first can change (a
# second `instrument()` on the same provider hands in the same SDK objects).
_before_collect: weakref.WeakKeyDictionary[Any, Callable[[], Sequence[Series]]] = (
    weakref.WeakKeyDictionary()
)
_wrap_lock = threading.Lock()
_logger = logging.getLogger("hooktel")


def before_collect(stream: Stream, drain: Callable[[], Sequence[Series]]) -> None:
    """Have the SDK call `drain()` right before it collects `stream`, and take what it returns."""
    match = stream.match
    with _wrap_lock:
        wrapped = match in _before_collect
        _before_collect[match] = drain
        if wrapped:
            return
        original = match.collect

        def collect(*args: Any, **kwargs: Any) -> Any:
            drain_now = _before_collect.get(match)
            if drain_now is not None:
                try:
                    _feed(match, drain_now())
                except Exception:  # the SDK's collection goes on with what it has
                    _logger.exception(
                        "hooktel: the requests aggregated since the last collection could not "
                        "be handed to the OpenTelemetry SDK; they are missing from this one"
                    )
            return original(*args, **kwargs)

        match.collect = collect


def _feed(match: Any, series: Sequence[Series]) -> None:
    """Add each series to its aggregation, as the SDK's `consume_measurement` would have."""
    for one in series:
        key = _hash_attributes(one.attributes)
        with match._lock:
            created = key not in match._attributes_aggregation
            aggregation = match._get_or_create_aggregation(key, one.attributes)
        with aggregation._lock:
            if created and match._previous_collection_start_nanos is None:
                # The SDK starts a new attribute set's point when it is first measured.
                aggregation._start_time_unix_nano = one.first_ns
                aggregation._previous_collection_start_nano = one.first_ns
            counts = aggregation._value
            if counts is not None:
                one.counts = [a + b for a, b in zip(counts, one.counts, strict=True)]
            aggregation._value = one.counts
            aggregation._sum += one.sum
            if aggregation._record_min_max:
                aggregation._min = min(aggregation._min, one.min)
                aggregation._max = max(aggregation._max, one.max)
        for exemplar in one.exemplars or ():
            if exemplar is not None:
                value, time_unix_nano, attributes, span_context = exemplar
                aggregation._reservoir.offer(
                    value, time_unix_nano, attributes, _context_of(span_context)
                )


_EMPTY_CONTEXT = Context()


def _context_of(span_context: Any) -> Context:
    if span_context is None:
        return _EMPTY_CONTEXT
    return trace_api.set_span_in_context(trace_api.NonRecordingSpan(span_context))
