"""The seam to OpenTelemetry's trace internals (API and SDK): each private name hooktel uses
for spans, attributes, propagators and the SDK's configurator, what it is for, and where
the versions `FLOOR` to `NEWEST` (see the package) differ.

The tracer (`sdk_tracer`, the fast span path's input; a `ProxyTracer`'s `_real_tracer`):
- `Tracer.sampler`, `id_generator`, `resource`, `span_processor` (public) and
  `_span_limits`, `_instrumentation_scope`: what a span of the tracer shares (all versions);
- `Tracer._is_enabled` (`enabled_check`), `Tracer._tracer_metrics` (`tracer_metrics`, the
  SDK's own span metrics) and the span processor's `_on_ending` (`on_ending`): called where
  the SDK has them, left out where not (absent from 1.28; present from 1.41 at the latest);
- `TracerProvider`'s multi span processor `_span_processors` (`span_processors`);
- `ParentBased`'s delegates `_root`, `_remote_parent_sampled`, ... (`is_default_sampler`).

`ReadableSpan`'s fields (`READABLE_FIELDS`, what its properties read; all versions): a
`RequestSpan` keeps its state in them, and a span class gets the tracer-wide ones from
`tracer_fields`. Where `ReadableSpan` keeps them otherwise (`READABLE_LAYOUT` false) the
fast span path is off and the SDK makes the spans.

Attributes: `BoundedAttributes._set_items` (1.43+; `set_items` sets them one by one before,
as the SDK's own `set_attributes` then did) and `_immutable` (`freeze`; all versions).

The API: `TraceFlags.RANDOM_TRACE_ID` (1.42+; 0 before, so no such flag is set or kept),
`CompositePropagator._propagators` (`composite_members`) and `TraceState._dict`
(`trace_state_entries`; all versions).

The SDK's configurator: `opentelemetry.sdk._configuration._OTelSDKConfigurator` and its
`_configure` (`sdk_configurator`, `configure_sdk`; all versions).
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import TraceFlags, TraceState

from .. import _sdk as _shared
from . import SPAN_KEY

RANDOM_TRACE_ID: int = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
"""The W3C Level 2 random-trace-id flag where the API knows it (1.42+), else 0."""

_TRACER_FIELDS = (
    "sampler",
    "id_generator",
    "resource",
    "span_processor",
    "_span_limits",
    "_instrumentation_scope",
)
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
"""The fields `ReadableSpan`'s properties read. `RequestSpan` keeps its state in them without
calling `ReadableSpan`'s constructor, and uses no other private name of `ReadableSpan`
(tests/otel/test_sdk_seam.py); the OTLP encoder is handed them at initialisation."""

ATTRIBUTES_DICT = "_dict"
"""The plain dict a `BoundedAttributes` keeps its items in, in order (all versions); the
OTLP encoder is handed this name at initialisation."""


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


def tracer_fields(tracer: sdk_trace.Tracer) -> dict[str, Any]:
    """The `READABLE_FIELDS` every span of `tracer` shares, by name: the class attributes
    of the span class `spans.requestspan.span_class` makes for the tracer."""
    return {
        "_resource": tracer.resource,
        "_instrumentation_info": tracer.instrumentation_info,
        "_instrumentation_scope": instrumentation_scope(tracer),
    }


def instrumentation_scope(tracer: sdk_trace.Tracer) -> Any:
    """The tracer's `InstrumentationScope` (kept privately; every span of it shares it)."""
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


def random_bits(tracer: sdk_trace.Tracer) -> Callable[[int], int] | None:
    """`random.getrandbits` where `tracer`'s ids come from the SDK's `RandomIdGenerator`
    (which draws each id with it, and draws again for the all-zero id) and `SpanContext`
    is the tuple above; else None.

    `spans.fastpath` then draws the ids itself, and makes the span context of ids valid by
    construction as that tuple, without the constructor checking them again (~180 ns).
    """
    if type(tracer.id_generator) is RandomIdGenerator and _shared.SPAN_CONTEXT_IS_TUPLE:
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


SET_ITEMS = hasattr(BoundedAttributes, "_set_items")
"""`BoundedAttributes._set_items` (1.43+): many attributes under one lock."""


def set_items(bounded: BoundedAttributes, attributes: Mapping[str, Any]) -> None:
    """`attributes` into `bounded` with the SDK's validation and limits."""
    if SET_ITEMS:
        bounded._set_items(attributes)
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
    API's default runtime context (`context_var`), that variable is set directly:
    one call instead of four layers of Python.
    """
    variable = _shared.context_var()
    if variable is None:

        def attach_through_the_api(span: trace.Span, parent: Context) -> object:
            return context_api.attach(trace.set_span_in_context(span, parent))

        return attach_through_the_api

    def attach(span: trace.Span, parent: Context) -> object:
        return variable.set(Context({**parent, SPAN_KEY: span}))

    return attach


def restore_context(token: object, span: trace.Span) -> None:
    """Detach the context a request attached, also from a copy of the request's context.

    The API's runtime context returns a `contextvars.Token`. A framework may end
    the request from a child task, which holds a copy of the request's context
    where the token cannot be reset; there, where the request's span is still
    current, the variable goes back to what it held before the request.
    """
    if not isinstance(token, contextvars.Token):
        context_api.detach(token)  # type: ignore[arg-type]
        return
    try:
        token.var.reset(token)
    except ValueError:
        if trace.get_current_span() is span:
            previous = token.old_value
            token.var.set(Context() if previous is contextvars.Token.MISSING else previous)
