"""`RequestSpan`: a server span as plain fields, exported as a standard SDK `ReadableSpan`;
and the small helpers of the span bridge, the Python twins of `hooktel.otel.spans.requestspan`.

The SDK's own `Span` pays, per span, for validating every attribute again,
three locks, two bounded lists and a copy into a `ReadableSpan` at the end.
A request span holds hooktel's attributes (valid by construction) in a plain
dict and creates the bounded containers only when the handler adds events,
links or attributes of its own, which then take the SDK's validating route
(`BoundedAttributes`, `BoundedList`, the same span limits). It subclasses
`ReadableSpan` like the SDK's `Span` does, so span processors see the same
read interface in `on_start`, and get a genuine `ReadableSpan` in `on_end`.
The fields it sets are `ReadableSpan`'s own (`_sdk.READABLE_FIELDS`); the fast
path is only used where the SDK keeps that layout.

The helpers (`format_traceparent`, `without_keys`, `untracked`) are the
specification of the compiled extension `requestspan.c`; `_core.twin` chooses
one of the two, once, and the differential tests in tests/native/ hold the
compiled one to these.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags

from ... import _core
from .. import _sdk
from .handover import takes_request_spans

logger = logging.getLogger(__name__)
_UNSET = Status(StatusCode.UNSET)
_SERVER = SpanKind.SERVER  # an Enum member lookup costs ~80 ns on Python 3.11


_T = TypeVar("_T")

KNOWN_TRACE_FLAGS = TraceFlags.SAMPLED | _sdk.RANDOM_TRACE_ID
"""The flags Level 2 defines (section 3.2.2.5): sampled and random-trace-id.

Every other bit is cleared on the way in and on the way out: the spec says
vendors "MUST set those to zero" in version `00`, which is what this side sends,
and for a higher version it only parses the flags it supports. The random bit
is kept because the OpenTelemetry SDK carries it from parent to child.
"""

_FLAGS_HEX = tuple(f"{flags:02x}" for flags in range(256))


def format_traceparent(trace_id: int, span_id: int, trace_flags: int) -> str:
    """The version `00` `traceparent` this side sends, flags outside `KNOWN_TRACE_FLAGS` zero.

    `int.to_bytes(...).hex()` is ~3x cheaper than `:032x` formatting; an id that is
    negative or too large raises `OverflowError`, and `trace_flags` is 0-255.
    """
    return (
        f"00-{trace_id.to_bytes(16, 'big').hex()}-{span_id.to_bytes(8, 'big').hex()}"
        f"-{_FLAGS_HEX[trace_flags & KNOWN_TRACE_FLAGS]}"
    )


def without_keys(mapping: dict[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    """The items of `mapping` whose keys are not in `skip`, in order: the span attributes."""
    return {key: value for key, value in mapping.items() if key not in skip}


def untracked(obj: _T) -> _T:
    """`obj` as it is: only the compiled twin can take it out of the garbage collector's care.

    The compiled twin does so for what cannot be part of a cycle and waits in an
    export queue: a finished span (its fields refer to values, never back to it) and
    its span context. Queued, they outlive young collections and are traversed by
    the older ones: under load, the collector's share of a traced uvicorn server's
    time falls from 1.7% to 0.7% without them (docs/benchmarks.md).
    """
    return obj


def span_class(tracer: Any, on_ending: Callable[[Any], None] | None) -> type[RequestSpan]:
    """The `RequestSpan` class of one tracer's spans.

    What every span of a tracer shares (its resource, instrumentation info and
    scope, span limits and span processor) is read once, and kept as class
    attributes of a subclass made for that tracer, where `ReadableSpan`'s
    properties find them: a span sets only what is its own.
    """
    limits = _sdk.span_limits(tracer)
    shared: dict[str, Any] = {
        "_resource": tracer.resource,
        "_instrumentation_info": tracer.instrumentation_info,
        "_instrumentation_scope": _sdk.instrumentation_scope(tracer),
        "_limits": limits,
        "_span_processor": tracer.span_processor,
        "_on_ending": on_ending,
        "_plain_max": _plain_max(limits),
    }
    return type(RequestSpan.__name__, (RequestSpan,), shared)


def _plain_max(limits: SpanLimits) -> int:
    """How many attributes a span holds in a plain dict before the SDK's limits can bite."""
    if limits.max_span_attribute_length is not None:
        return -1  # values may be cut: every attribute takes the SDK's route
    return sys.maxsize if limits.max_span_attributes is None else limits.max_span_attributes


class RequestSpan(trace_api.Span, ReadableSpan):
    """One request's SERVER span; the whole `opentelemetry.trace.Span` API.

    Made through the class `span_class` returns for the span's tracer.
    """

    # Shared by every span of one tracer (set by `span_class`).
    _resource: Any
    _instrumentation_info: Any
    _instrumentation_scope: Any
    _limits: SpanLimits
    _span_processor: Any
    _on_ending: Callable[[Any], None] | None
    _plain_max: int
    # Every span's until it changes them.
    _kind = _SERVER
    _status = _UNSET
    _end_time: int | None = None
    _events: BoundedList[Event] | tuple[()] = ()
    _links: BoundedList[trace_api.Link] | tuple[()] = ()
    _record_end_metrics: Callable[[], None] | None = None

    def __init__(
        self,
        name: str,
        context: trace_api.SpanContext,
        parent: trace_api.SpanContext | None,
        attributes: dict[str, Any],
        record_end_metrics: Callable[[], None] | None,
    ) -> None:
        # The fields ReadableSpan's properties read, set without its constructor.
        self._name = name
        self._context = context
        self._parent = parent
        self._start_time: int | None = None
        if record_end_metrics is not None:
            self._record_end_metrics = record_end_metrics
        self._lock = threading.Lock()
        self._attributes: dict[str, Any] | BoundedAttributes = attributes
        if len(attributes) > self._plain_max:
            self._attributes = self._bounded()

    def start(self, start_time: int, parent_context: Context) -> None:
        self._start_time = start_time
        self._span_processor.on_start(self, parent_context=parent_context)

    # -- what hooktel sets ------------------------------------------------------------

    def set_trusted(self, attributes: Mapping[str, Any]) -> None:
        """Add attributes hooktel built, without validating them again."""
        with self._lock:
            if self._end_time is not None:
                return
            current = self._attributes
            if type(current) is dict and len(current) + len(attributes) <= self._plain_max:
                current.update(attributes)
            else:
                _sdk.set_items(self._as_bounded(), attributes)

    def _bounded(self) -> BoundedAttributes:
        return BoundedAttributes(
            self._limits.max_span_attributes,
            self._attributes,
            immutable=False,
            max_value_len=self._limits.max_span_attribute_length,
        )

    def _as_bounded(self) -> BoundedAttributes:
        """The attributes as the SDK keeps them, from the first time the SDK rules apply."""
        if type(self._attributes) is dict:
            self._attributes = self._bounded()
        return self._attributes  # type: ignore[return-value]

    # -- the Span API, with the SDK's semantics ----------------------------------------

    def get_span_context(self) -> trace_api.SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        with self._lock:
            if self._end_time is not None:
                logger.warning("Setting attribute on ended span.")
                return
            _sdk.set_items(self._as_bounded(), attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        limits = self._limits
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        with self._lock:
            if self._end_time is not None:
                logger.warning("Calling add_event on an ended span.")
                return
            if not self._events:
                self._events = BoundedList(limits.max_events)
            self._events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(
        self, context: trace_api.SpanContext, attributes: Mapping[str, Any] | None = None
    ) -> None:
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        limits = self._limits
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        with self._lock:
            if self._end_time is not None:
                logger.warning("Calling add_link on an ended span.")
                return
            if not self._links:
                self._links = BoundedList(limits.max_links)
            self._links.append(trace_api.Link(context=context, attributes=bounded))

    def update_name(self, name: str) -> None:
        if self._end_time is not None:
            logger.warning("Calling update_name on an ended span.")
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None:
            logger.warning("Calling set_status on an ended span.")
            return
        if self._status.status_code is StatusCode.OK:
            return  # OK is final
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                logger.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time.time_ns()
            if type(self._attributes) is not dict:
                _sdk.freeze(self._attributes)  # type: ignore[arg-type]
        if self._record_end_metrics is not None:
            self._record_end_metrics()
        if self._on_ending is not None:
            self._on_ending(self)
        if takes_request_spans(self._span_processor):
            # Ended: nothing changes it any more.
            self._span_processor.on_end(helpers.untracked(self))
            return
        self._span_processor.on_end(
            helpers.untracked(
                ReadableSpan(  # positional: ReadableSpan's parameter order, cheaper than keywords
                    self._name,
                    self._context,
                    self._parent,
                    self._resource,
                    self._attributes,
                    self._events,
                    self._links,
                    _SERVER,
                    self._instrumentation_info,
                    self._status,
                    self._start_time,
                    self._end_time,
                    self._instrumentation_scope,
                )
            )
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """As the SDK's span: an exception leaving a `with` block is recorded, then end."""
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'


helpers = _core.twin("hooktel.otel.spans.requestspan", known_trace_flags=KNOWN_TRACE_FLAGS)
"""The helpers that run: the compiled `requestspan`, or this module; given its flags here,
before any other module asks `_core.twin` for it (importing this module comes first)."""
