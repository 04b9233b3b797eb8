"""Every use hooktel makes of the OpenTelemetry API's and SDK's private parts, in one place.

Tested with opentelemetry-api and -sdk from `FLOOR` (the floor pyproject.toml
declares; `scripts/test.sh` runs tests/otel against it) to `NEWEST` (the pin of
requirements-dev.txt). Outside that range each accessor degrades rather than
fails: what a version lacks is looked up once and left out, and the fast
span path (`spans.fastpath`) turns itself off for an SDK whose tracer or
`ReadableSpan` is not laid out as below, so requests take the ordinary API path.

What 1.28 lacks and the newest SDK has, and how it is met here:
- `TraceFlags.RANDOM_TRACE_ID` (1.42): 0 before, so no such flag is set or kept;
- `BoundedAttributes._set_items` (1.43): attributes set one by one before, as
  the SDK's own `set_attributes` then did;
- `Tracer._is_enabled`, `Tracer._tracer_metrics` and the span processor's
  `_on_ending`: not called where absent.

The metrics section (at the end) reaches into the SDK's metric streams; where an
SDK's are laid out otherwise (`histogram_streams` checks), the metrics are
recorded with the SDK's own `Histogram.record()`.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import time_ns
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.trace import TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY

FLOOR = "1.28.0"
NEWEST = "1.45.2"

RANDOM_TRACE_ID: int = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
"""The W3C Level 2 random-trace-id flag where the API knows it (1.42+), else 0."""

_TRACER_FIELDS = ("sampler", "id_generator", "resource", "span_processor", "_span_limits")
READABLE_FIELDS = (
    "_name",
    "_context",
    "_parent",
    "_kind",
    "_resource",
    "_attributes",
    "_events",
    "_links",
    "_instrumentation_info",
    "_instrumentation_scope",
    "_status",
    "_start_time",
    "_end_time",
)
"""The fields `ReadableSpan`'s properties read; `RequestSpan` sets them without its constructor."""

ATTRIBUTES_DICT = "_dict"
"""The plain dict a `BoundedAttributes` keeps its items in, in order (all versions)."""


def _readable_layout() -> bool:
    """True when `ReadableSpan` keeps what its properties read in `READABLE_FIELDS`."""
    span = sdk_trace.ReadableSpan("probe")
    return all(hasattr(span, field) for field in READABLE_FIELDS)


READABLE_LAYOUT = _readable_layout()


def sdk_tracer(tracer: trace.Tracer) -> sdk_trace.Tracer | None:
    """The SDK `Tracer` behind `tracer` (a resolved `ProxyTracer` included), if the fast
    path knows its layout; else None."""
    real = getattr(tracer, "_real_tracer", None) or tracer
    if type(real) is not sdk_trace.Tracer or not READABLE_LAYOUT:
        return None
    if not all(hasattr(real, field) for field in _TRACER_FIELDS):
        return None
    return real


def span_limits(tracer: sdk_trace.Tracer) -> sdk_trace.SpanLimits:
    limits: sdk_trace.SpanLimits = tracer._span_limits
    return limits


def instrumentation_scope(tracer: sdk_trace.Tracer) -> Any:
    return tracer._instrumentation_scope


def is_default_sampler(sampler: Any) -> bool:
    """True for the SDK's default sampler, `ParentBased(ALWAYS_ON)` with its own delegates.

    Its decision depends on the parent alone (sample a root, follow a valid parent's
    sampled flag; keep the parent's trace state), so `spans.fastpath` takes it without the
    call. Any other sampler, a `ParentBased` with other delegates included, is called.
    """
    on, off = sdk_sampling.ALWAYS_ON, sdk_sampling.ALWAYS_OFF
    return type(sampler) is sdk_sampling.ParentBased and (
        getattr(sampler, "_root", None),
        getattr(sampler, "_remote_parent_sampled", None),
        getattr(sampler, "_remote_parent_not_sampled", None),
        getattr(sampler, "_local_parent_sampled", None),
        getattr(sampler, "_local_parent_not_sampled", None),
    ) == (on, on, off, on, off)


def enabled_check(tracer: sdk_trace.Tracer) -> Callable[[], bool] | None:
    """The tracer's own "is it enabled" check, where the SDK has one."""
    return getattr(tracer, "_is_enabled", None)


def tracer_metrics(tracer: sdk_trace.Tracer) -> Any:
    """The SDK's internal span metrics, or None (absent, or the no-op kind the SDK uses
    unless OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED is set)."""
    metrics = getattr(tracer, "_tracer_metrics", None)
    return None if type(metrics).__name__ == "NoOpTracerMetrics" else metrics


def on_ending(tracer: sdk_trace.Tracer) -> Callable[[Any], None] | None:
    """The span processors' `_on_ending` hook, where the SDK calls one before `on_end`."""
    return getattr(tracer.span_processor, "_on_ending", None)


def is_trace_id_random(tracer: sdk_trace.Tracer) -> bool:
    check = getattr(tracer.id_generator, "is_trace_id_random", None)
    return bool(check()) if check is not None and RANDOM_TRACE_ID else False


def _span_context_is_tuple() -> bool:
    """True when the API's `SpanContext` is the tuple
    `(trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)` its constructor builds."""
    flags, state = TraceFlags(1), TraceState([("k", "v")])
    probe = trace.SpanContext(1, 2, False, flags, state)
    return isinstance(probe, tuple) and tuple(probe) == (1, 2, False, flags, state, True)


SPAN_CONTEXT_IS_TUPLE = _span_context_is_tuple()


def random_bits(tracer: sdk_trace.Tracer) -> Callable[[int], int] | None:
    """`random.getrandbits` where `tracer`'s ids come from the SDK's `RandomIdGenerator`
    (which draws each id with it, and draws again for the all-zero id) and `SpanContext`
    is the tuple above; else None.

    `spans.fastpath` then draws the ids itself, and makes the span context of ids valid by
    construction as that tuple, without the constructor checking them again (~180 ns).
    """
    import random

    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    if type(tracer.id_generator) is RandomIdGenerator and SPAN_CONTEXT_IS_TUPLE:
        return random.getrandbits
    return None


def span_processors(active: Any) -> tuple[Any, ...] | None:
    """The processors a provider's span processor (a multi span processor) calls, or None."""
    processors = getattr(active, "_span_processors", None)
    return processors if isinstance(processors, tuple) else None


def sdk_configurator() -> Any:
    """The SDK's own configurator class (`opentelemetry-distro`'s is it, unchanged): the
    base of the `hooktel_otlp` configurator. Imported when asked: it imports the whole SDK."""
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    return _OTelSDKConfigurator


def configure_sdk(configurator: Any, **kwargs: Any) -> None:
    """What the SDK's configurator does for `configurator`: the SDK set up from the
    environment (`_initialize_components`), as `opentelemetry-instrument` asks it to."""
    sdk_configurator()._configure(configurator, **kwargs)


def set_items(bounded: BoundedAttributes, attributes: Mapping[str, Any]) -> None:
    """`attributes` into `bounded` with the SDK's validation and limits."""
    set_all = getattr(bounded, "_set_items", None)
    if set_all is not None:
        set_all(attributes)
        return
    for key, value in attributes.items():
        bounded[key] = value


def freeze(bounded: BoundedAttributes) -> None:
    """Make `bounded` immutable, as the SDK does when a span ends."""
    bounded._immutable = True


def composite_members(propagator: Any) -> list[Any] | None:
    """The propagators inside a `CompositePropagator`, or None for any other propagator."""
    inner = getattr(propagator, "_propagators", None)
    return None if inner is None else list(inner)


def trace_state_entries(state: TraceState) -> dict[str, str]:
    """The dict behind a `TraceState`, for a subclass to fill in its own constructor."""
    entries: dict[str, str] = state._dict
    return entries


def span_attacher() -> Callable[[trace.Span, Context], object]:
    """`attach(span, parent)`: make `span` current in a copy of `parent`; the token back.

    What `context.attach(trace.set_span_in_context(span, parent))` does. With the
    API's default runtime context (a context variable holding a `Context`), that
    variable is set directly: one call instead of four layers of Python.
    """
    from opentelemetry import context as context_api
    from opentelemetry.trace.propagation import _SPAN_KEY

    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ != "ContextVarsRuntimeContext" or not isinstance(
        variable, contextvars.ContextVar
    ):

        def attach_through_the_api(span: trace.Span, parent: Context) -> object:
            return context_api.attach(trace.set_span_in_context(span, parent))

        return attach_through_the_api

    def attach(span: trace.Span, parent: Context) -> object:
        return variable.set(Context({**parent, _SPAN_KEY: span}))

    return attach


def restore_context(token: object, span: trace.Span) -> None:
    """Detach the context a request attached, also from a copy of the request's context.

    The API's runtime context returns a `contextvars.Token`. A framework may end
    the request from a child task, which holds a copy of the request's context
    where the token cannot be reset; there, where the request's span is still
    current, the variable goes back to what it held before the request.
    """
    if not isinstance(token, contextvars.Token):
        from opentelemetry import context as context_api

        context_api.detach(token)  # type: ignore[arg-type]
        return
    try:
        token.var.reset(token)
    except ValueError:
        if trace.get_current_span() is span:
            previous = token.old_value
            token.var.set(Context() if previous is contextvars.Token.MISSING else previous)


# =====================================================================================
# Metrics (issue 9; used by `metrics.instrument`, `histograms`, `streamtable`): histograms
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

    A `SpanContext` laid out otherwise (`SPAN_CONTEXT_IS_TUPLE`) gives a type no object
    has (the property is used).
    """
    return (trace.SpanContext, 3) if SPAN_CONTEXT_IS_TUPLE else (_NoLayout, 0)


# -- the SDK's metric internals ------------------------------------------------------


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
_INTERNALS_FOUND = None not in (
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
    if not _INTERNALS_FOUND or type(instrument) is not _Histogram:
        return None
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    return None if storages is None else list(storages.values())


def watch_readers(instrument: Any, changed: Callable[[], None]) -> None:
    """Call `changed()` after a metric reader is added to or removed from the provider
    (SDKs before 1.3x have a fixed set of readers: nothing to watch)."""
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
