"""The seam to OpenTelemetry's metric internals: histograms aggregated by hooktel and handed
to the SDK's own aggregations when it collects (used by `metrics.histograms`,
`metrics.streamtable` and `metrics.instrument`).

The SDK keeps, per metric reader, one `MetricReaderStorage`; in it, per instrument,
one `_ViewInstrumentMatch` per matching view (a metric *stream*); in that, per
attribute set, one aggregation. `Histogram.record()` builds a `Measurement`, asks
the exemplar filter, and walks that whole tree for every measurement. hooktel
aggregates on its side instead, one table per stream, and right before the SDK
collects a stream, adds what it aggregated to the stream's aggregations, as if each
measurement had been recorded there: bucket counts, sum, min and max, the start
time the first measurement would have given, and the exemplar each bucket's
reservoir would hold.

The private names, what each is for, and where `FLOOR` to `NEWEST` differ:
- the API's `_ProxyMeterProvider` (`is_configured`: the global stand-in; all versions);
- `opentelemetry.sdk.metrics._internal.*`: `_Histogram`, `_DropAggregation`,
  `DefaultAggregation`, `_ExplicitBucketHistogramAggregation`, the exemplar filters and
  `AlignedHistogramBucketExemplarReservoir` (what `histogram_streams` recognises; all
  versions), `_hash_attributes` (1.45+: the stream's attribute-set keys);
- the provider's `_sdk_config.exemplar_filter` (`exemplar_filter`);
- the instrument's `_measurement_consumer`, its `_reader_storages` and their
  `_get_or_init_view_instrument_match` (the streams; all versions), its
  `add_metric_reader`/`remove_metric_reader` (1.44+: `watch_readers`; none to watch
  before) and `_meter_config` (`watch_enabled`; absent from 1.28, where a meter is always enabled);
- a stream's `_MATCH_FIELDS` (all versions) and `_LIMITED_MATCH_FIELDS` (1.45+: a
  cardinality limit, delta streams that forget their attribute sets; before, keyed by
  `frozenset(attributes.items())`, no limit, `_aggregation_of` makes the aggregation);
- an aggregation's `_AGGREGATION_FIELDS` and its reservoir's `offer` (`_feed`).

Where any of these is not found (`INTERNALS_FOUND`, or `histogram_streams`' checks on one
instrument), `histogram_streams` says None and the SDK's own `Histogram.record()` records.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider

from .. import _sdk as _shared


def is_configured(provider: MeterProvider) -> bool:
    """False for the API's stand-ins: the global default before any provider is set, no-op."""
    return not isinstance(provider, (_ProxyMeterProvider, NoOpMeterProvider))


class _NoLayout(tuple[Any, ...]):
    """Stands for a `SpanContext` whose layout is not the known one: matches no object."""


def span_context_layout() -> tuple[type, int]:
    """(`SpanContext`, the index of its trace flags in it): `SpanContext` is a tuple, and
    the compiled recorder reads the flags there instead of through the property.

    A `SpanContext` laid out otherwise (`SPAN_CONTEXT_IS_TUPLE`) gives a type no object
    has (the property is used).
    """
    return (trace.SpanContext, 3) if _shared.SPAN_CONTEXT_IS_TUPLE else (_NoLayout, 0)


def _metric_internal(module: str, name: str) -> Any:
    """`name` of `opentelemetry.sdk.metrics._internal.<module>`, or None where this SDK
    has no such thing (then `histogram_streams` says None: the SDK records)."""
    try:
        found = importlib.import_module(f"opentelemetry.sdk.metrics._internal.{module}")
    except ImportError:
        return None
    return getattr(found, name, None)


class ExemplarRule:
    """Which measurements the provider's exemplar filter lets exemplars be made of."""

    TRACE_BASED = "trace_based"
    ALWAYS_ON = "always_on"
    ALWAYS_OFF = "always_off"
    CUSTOM = "custom"


_hash_attributes = _metric_internal("_view_instrument_match", "_hash_attributes")
_Histogram = _metric_internal("instrument", "_Histogram")
_DropAggregation = _metric_internal("aggregation", "_DropAggregation")
_DefaultAggregation = _metric_internal("aggregation", "DefaultAggregation")
_ExplicitBucketAggregation = _metric_internal("aggregation", "_ExplicitBucketHistogramAggregation")
_AlignedReservoir = _metric_internal("exemplar", "AlignedHistogramBucketExemplarReservoir")
_FILTERS = {
    _metric_internal("exemplar", "TraceBasedExemplarFilter"): ExemplarRule.TRACE_BASED,
    _metric_internal("exemplar", "AlwaysOnExemplarFilter"): ExemplarRule.ALWAYS_ON,
    _metric_internal("exemplar", "AlwaysOffExemplarFilter"): ExemplarRule.ALWAYS_OFF,
}
INTERNALS_FOUND = None not in (
    _Histogram,
    _DefaultAggregation,
    _DropAggregation,
    _ExplicitBucketAggregation,
    _AlignedReservoir,
    *_FILTERS,
)

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
    "_instrument",
    "_instrument_class_aggregation",
    "collect",
)
"""What a stream (`_ViewInstrumentMatch`) has in every SDK the metrics support (1.28+)."""
_LIMITED_MATCH_FIELDS = (
    "_cardinality_limit",
    "_reset_on_collect",
    "_previous_collection_start_nanos",
    "_get_or_create_aggregation",
)
"""What newer SDKs' streams have besides: a cardinality limit (and its overflow point), delta
streams that forget their attribute sets at each collection, and `_hash_attributes` keys.
Older ones (1.28) key by `frozenset(attributes.items())`, never forget, have no limit."""


def exemplar_filter(provider: Any) -> tuple[str, Any]:
    """(rule, filter): one of `ExemplarRule`, and the filter object for `CUSTOM`."""
    config = getattr(provider, "_sdk_config", None)
    found = getattr(config, "exemplar_filter", None)
    rule = _FILTERS.get(type(found))
    if rule is not None:
        return rule, found
    if callable(getattr(found, "should_sample", None)):
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
    limited: bool
    """The newer layout (`_LIMITED_MATCH_FIELDS`)."""


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
            if type(aggregation) is not _ExplicitBucketAggregation or not all(
                hasattr(aggregation, name) for name in _AGGREGATION_FIELDS
            ):
                return None
            if type(aggregation._reservoir) is not _AlignedReservoir:
                return None
            keys = match._view._attribute_keys
            limited = _hash_attributes is not None and all(
                hasattr(match, name) for name in _LIMITED_MATCH_FIELDS
            )
            streams.append(
                Stream(
                    boundaries=tuple(aggregation._boundaries),
                    record_min_max=bool(aggregation._record_min_max),
                    attribute_keys=None if keys is None else frozenset(keys),
                    cardinality_limit=int(match._cardinality_limit) if limited else sys.maxsize,
                    resets_on_collect=bool(match._reset_on_collect) if limited else False,
                    match=match,
                    limited=limited,
                )
            )
    return streams


def _reader_storages(instrument: Any) -> Iterable[Any] | None:
    if not INTERNALS_FOUND or type(instrument) is not _Histogram:
        return None
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    return None if storages is None else list(storages.values())


def watch_readers(instrument: Any, changed: Callable[[], None]) -> None:
    """Call `changed()` after a metric reader is added to or removed from the provider
    (SDKs before 1.44 have a fixed set of readers: nothing to watch)."""
    consumer = instrument._measurement_consumer
    for name in ("add_metric_reader", "remove_metric_reader"):
        original = getattr(consumer, name, None)
        if original is None:
            continue

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
                    _feed(stream, drain_now())
                except Exception:  # the SDK's collection goes on with what it has
                    _logger.exception(
                        "hooktel: the requests aggregated since the last collection could not "
                        "be handed to the OpenTelemetry SDK; they are missing from this one"
                    )
            return original(*args, **kwargs)

        match.collect = collect


def _feed(stream: Stream, series: Sequence[Series]) -> None:
    """Add each series to its aggregation, as the SDK's `consume_measurement` would have."""
    for one in series:
        aggregation, new = _aggregation_of(stream, one.attributes)
        with aggregation._lock:
            if new:  # the SDK starts a new attribute set's point when it is first measured
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


def _aggregation_of(stream: Stream, attributes: Attributes) -> tuple[Any, bool]:
    """The stream's aggregation for `attributes`, and whether it starts at its first
    measurement (else the SDK started it at the previous delta collection)."""
    match = stream.match
    if stream.limited:
        key = _hash_attributes(attributes)
        with match._lock:
            created = key not in match._attributes_aggregation
            aggregation = match._get_or_create_aggregation(key, attributes)
        return aggregation, created and match._previous_collection_start_nanos is None
    key = frozenset(attributes.items())
    with match._lock:
        found = match._attributes_aggregation.get(key)
        if found is not None:
            return found, False
        view = match._view
        factory = view._aggregation
        if isinstance(factory, _DefaultAggregation):
            factory = match._instrument_class_aggregation[match._instrument.__class__]
        found = factory._create_aggregation(
            match._instrument, attributes, view._exemplar_reservoir_factory, time_ns()
        )
        match._attributes_aggregation[key] = found
        return found, True


_EMPTY_CONTEXT = Context()


def _context_of(span_context: Any) -> Context:
    if span_context is None:
        return _EMPTY_CONTEXT
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))
