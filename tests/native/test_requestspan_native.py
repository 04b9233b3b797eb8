"""The compiled request span against its twin, `RequestSpan`: the same handler scripts.

A script is what a handler does to the current span through the Span API (every
method, valid and invalid values, nested spans, an early end, a raise), then
what the server does at the end of the request, then calls on the ended span.
It runs once with each twin, each on its own provider; the exported spans (ids
and clocks aside), what the handler observed, and the warnings logged must be
equal. The rest holds the compiled span to what its C owes the collector and
the processors.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, TraceFlags, TraceState

from hooktel.otel._sdk import trace as trace_seam
from hooktel.otel.spans import fastpath, requestspan_py
from hooktel.otel.spans.fastpath import FastSpans


class Spanning:
    """A value whose `__str__` and `__repr__` start (and end) another span."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def __str__(self) -> str:
        with self.tracer.start_as_current_span("from-str"):
            return "spanning"

    __repr__ = __str__


class SpanningError(Exception):
    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __str__(self) -> str:
        with self.tracer.start_as_current_span("from-exception-str"):
            return "spanning error"


class Faulty(SpanProcessor):
    """A processor that raises where it is told to."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        if self.where == "start":
            raise RuntimeError("on_start failed")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("on_end failed")


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def warnings_logged() -> Iterator[list[str]]:
    handler = Collected()
    loggers = [logging.getLogger(name) for name in ("hooktel", "opentelemetry")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def spans_of(tracer: Any, compiled: bool) -> FastSpans:
    """The fast path of `tracer`, starting the compiled span or its twin."""
    fast = FastSpans.for_tracer(tracer)
    assert fast is not None
    on_ending = trace_seam.on_ending(fast._tracer)
    fast._span_class = (  # the one place a test picks the twin, per span factory
        requestspan_py.compiled_spans(fast._tracer, on_ending)
        if compiled
        else requestspan_py.span_class(fast._tracer, on_ending)
    )
    return fast


PARENTS = {
    "root": None,
    "sampled": trace.SpanContext(0x1234, 0x5678, True, TraceFlags(1), TraceState([("k", "v")])),
    "unsampled": trace.SpanContext(0x1234, 0x5678, True, TraceFlags(0)),
}
LINKS = {
    "valid": trace.SpanContext(0xABC, 0xDEF, True),
    "invalid": trace.INVALID_SPAN_CONTEXT,
    "invalid-with-state": trace.SpanContext(0, 0, False, trace_state=TraceState([("a", "b")])),
}
STATUSES = {
    "ok": (Status(StatusCode.OK), None),
    "error": (Status(StatusCode.ERROR, "broken"), None),
    "unset": (Status(StatusCode.UNSET), None),
    "status-and-description": (Status(StatusCode.ERROR), "ignored"),
    "code-error": (StatusCode.ERROR, "bad"),
    "code-ok": (StatusCode.OK, None),
    "code-unset": (StatusCode.UNSET, "x"),
}

keys = st.sampled_from(["a", "b", "c", "http.route", "", "spanning"])
values = st.one_of(
    st.text(max_size=8),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(0, 9), st.text(max_size=3)), max_size=3),
    st.tuples(st.integers(0, 9), st.integers(0, 9)),
    st.just(b"bytes"),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.just("spanning"),
)
attribute_maps = st.dictionaries(keys, values, max_size=4)
operations = st.one_of(
    st.tuples(st.just("set_attribute"), keys, values),
    st.tuples(st.just("set_attributes"), attribute_maps),
    st.tuples(
        st.just("add_event"),
        st.text(max_size=5),
        st.none() | attribute_maps,
        st.none() | st.integers(1, 10**9),
    ),
    st.tuples(st.just("add_link"), st.sampled_from(sorted(LINKS)), st.none() | attribute_maps),
    st.tuples(
        st.just("record_exception"),
        st.booleans(),  # its __str__ starts a span
        st.none() | attribute_maps,
        st.booleans(),
    ),
    st.tuples(st.just("set_status"), st.sampled_from(sorted(STATUSES))),
    st.tuples(st.just("update_name"), st.text(max_size=6)),
    st.tuples(st.just("nested"), st.text(max_size=4)),
    st.tuples(st.just("observe")),
    st.tuples(st.just("end")),
    st.tuples(st.just("raise"), st.booleans()),
)


@dataclass(frozen=True)
class Request:
    parent: str
    operations: tuple[Any, ...]
    ending: str  # "server": ended as ServerSpans ends it; "with": by the handler's `with`
    limits: tuple[int | None, int | None, int | None, int | None]
    fault: str  # which processor call raises: "", "start" or "end"


requests = st.builds(
    Request,
    parent=st.sampled_from(sorted(PARENTS)),
    operations=st.lists(operations, max_size=8).map(tuple),
    ending=st.sampled_from(["server", "with"]),
    limits=st.tuples(
        st.none() | st.integers(0, 6),  # max_span_attributes
        st.none() | st.integers(1, 4),  # max_events (and links)
        st.none() | st.integers(1, 6),  # max_attribute_length
        st.none() | st.integers(1, 6),  # max_span_attribute_length
    ),
    fault=st.sampled_from(["", "", "start", "end"]),
)


@dataclass
class Observed:
    exported: list[Any] = field(default_factory=list)
    seen: list[Any] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)


def resolve(value: Any, tracer: trace.Tracer) -> Any:
    if value == "spanning":
        return Spanning(tracer)
    if isinstance(value, dict):
        return {
            (Spanning(tracer) if k == "spanning" else k): resolve(v, tracer)
            for k, v in value.items()
        }
    return value


def apply(span: Any, operation: tuple[Any, ...], tracer: trace.Tracer, seen: list[Any]) -> None:
    kind, *args = operation
    if kind == "set_attribute":
        key = Spanning(tracer) if args[0] == "spanning" else args[0]
        span.set_attribute(key, resolve(args[1], tracer))
    elif kind == "set_attributes":
        span.set_attributes(resolve(args[0], tracer))
    elif kind == "add_event":
        span.add_event(args[0], resolve(args[1], tracer), args[2])
    elif kind == "add_link":
        span.add_link(LINKS[args[0]], resolve(args[1], tracer))
    elif kind == "record_exception":
        error = SpanningError(tracer) if args[0] else ValueError("plain")
        span.record_exception(error, resolve(args[1], tracer), 7, escaped=args[2])
    elif kind == "set_status":
        status, description = STATUSES[args[0]]
        span.set_status(status, description)
    elif kind == "update_name":
        span.update_name(args[0])
    elif kind == "nested":
        with tracer.start_as_current_span(f"nested {args[0]}") as child:
            child.set_attribute("nested", True)
            seen.append(("nested parent is the span", trace.get_current_span() is child))
    elif kind == "observe":
        seen.append(observation(span))
    elif kind == "end":
        span.end()
    elif kind == "raise":
        raise (SpanningError(tracer) if args[0] else KeyError("raised"))


def observation(span: Any) -> tuple[Any, ...]:
    context = span.get_span_context()
    readable = isinstance(span, ReadableSpan)
    return (
        span.is_recording(),
        isinstance(span, trace.Span),
        trace.get_current_span() is span,
        type(context) is trace.SpanContext,
        int(context.trace_flags),
        readable and span.name,
        readable and span.kind,
        readable and dict(span.attributes),
        readable and (span.status.status_code, span.status.description),
        readable and len(span.events),
        readable and len(span.links),
        readable and (span.dropped_attributes, span.dropped_events, span.dropped_links),
        readable and span.end_time is None,
    )


def run(request: Request, compiled: bool) -> Observed:
    observed = Observed()
    limits = SpanLimits(
        max_span_attributes=request.limits[0],
        max_events=request.limits[1],
        max_links=request.limits[1],
        max_attribute_length=request.limits[2],
        max_span_attribute_length=request.limits[3],
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(Faulty(request.fault))
    tracer = provider.get_tracer("differential")
    fast = spans_of(tracer, compiled)
    parent = PARENTS[request.parent]
    parent_context = (
        Context() if parent is None else trace.set_span_in_context(trace.NonRecordingSpan(parent))
    )
    attach = trace_seam.span_attacher()
    with warnings_logged() as logged:
        try:
            span = fast.start("GET", parent_context, {"http.request.method": "GET"}, 1_000)
        except RuntimeError as exc:
            observed.seen.append(("start raised", str(exc)))
            observed.exported = normalised(exporter.get_finished_spans())
            observed.logged = logged
            return observed
        if isinstance(span, requestspan_py.HandlerCalls):
            expected = (
                requestspan_py.CompiledRequestSpan if compiled else requestspan_py.RequestSpan
            )
            assert isinstance(span, expected)  # type: ignore[arg-type]
        token = attach(span, parent_context)
        try:
            try:
                if request.ending == "with":
                    with span:
                        for operation in request.operations:
                            apply(span, operation, tracer, observed.seen)
                else:
                    for operation in request.operations:
                        apply(span, operation, tracer, observed.seen)
            except (KeyError, SpanningError, RuntimeError) as exc:
                observed.seen.append(("handler raised", type(exc).__name__))
            # What ServerSpans does at the end of the request.
            if span.is_recording():
                fastpath.set_trusted(span, {"http.response.status_code": 200, "http.route": "/r"})
                span.update_name("GET /r")
            try:
                span.end(end_time=5_000)
            except RuntimeError as exc:
                observed.seen.append(("end raised", str(exc)))
        finally:
            trace_seam.restore_context(token, span)
        # Used after its request ended.
        span.set_attribute("late", 1)
        span.add_event("late")
        span.update_name("late")
        span.set_status(StatusCode.ERROR)
        fastpath.set_trusted(span, {"late": 2})
        observed.seen.append(observation(span))
    observed.exported = normalised(exporter.get_finished_spans())
    observed.logged = list(logged)
    provider.shutdown()
    return observed


def normalised(spans: Any) -> list[Any]:
    ids: dict[int, int] = {}

    def ordinal(span_id: int | None) -> int | None:
        return None if span_id is None else ids.setdefault(span_id, len(ids))

    def clock(value: int | None) -> int | None:
        return value if value is not None and value < 10**12 else None  # ours, not now's

    def plain(attributes: Any) -> dict[str, Any]:
        kept = dict(attributes or {})
        if "exception.stacktrace" in kept:
            kept["exception.stacktrace"] = kept["exception.stacktrace"].rstrip().splitlines()[-1]
        return kept

    return [
        (
            span.name,
            span.kind,
            plain(span.attributes),
            [
                (event.name, plain(event.attributes), clock(event.timestamp))
                for event in span.events
            ],
            [(ordinal(link.context.span_id), plain(link.attributes)) for link in span.links],
            (span.status.status_code, span.status.description),
            ordinal(span.context.span_id),
            None if span.parent is None else ordinal(span.parent.span_id),
            (span.dropped_attributes, span.dropped_events, span.dropped_links),
            clock(span.start_time),
            clock(span.end_time),
            type(span) is ReadableSpan,
        )
        for span in spans
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_the_compiled_span_exports_and_shows_what_its_twin_does(request: Request) -> None:
    assert run(request, compiled=True) == run(request, compiled=False)


# -- what the C owes the collector and the processors ------------------------------------


@pytest.fixture
def traced() -> Iterator[tuple[FastSpans, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield spans_of(provider.get_tracer("native"), compiled=True), exporter
    provider.shutdown()


def test_it_is_the_fast_paths_span_where_compiled(
    traced: tuple[FastSpans, InMemorySpanExporter],
) -> None:
    provider = TracerProvider()
    fast = FastSpans.for_tracer(provider.get_tracer("default"))
    assert fast is not None
    span = fast.start("GET", Context(), {}, 1)
    assert isinstance(span, requestspan_py.CompiledRequestSpan)  # type: ignore[arg-type]
    assert isinstance(span, trace.Span) and isinstance(span, ReadableSpan)
    assert type(span.get_span_context()) is trace.SpanContext
    span.end()


def test_a_cycle_through_the_span_is_collected(
    traced: tuple[FastSpans, InMemorySpanExporter],
) -> None:
    fast, _ = traced
    span: Any = fast.start("GET", Context(), {"a": 1}, 1)
    assert gc.is_tracked(span)
    assert span.get_span_context() in gc.get_referents(span)
    span.me = span  # a cycle through its __dict__
    span.set_trusted({"self": span})  # and through a field (trusted: not validated)
    gone = weakref.ref(span)
    del span
    gc.collect()
    assert gone() is None


def test_ended_twice_or_used_after_the_end_changes_nothing(
    traced: tuple[FastSpans, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fast, exporter = traced
    span: Any = fast.start("GET", Context(), {"a": 1}, 1)
    span.end(end_time=5)
    span.end(end_time=9)
    span.set_trusted({"b": 2})
    span.update_name("other")
    assert not span.is_recording()
    (exported,) = exporter.get_finished_spans()
    assert (exported.name, dict(exported.attributes), exported.end_time) == ("GET", {"a": 1}, 5)
    assert "Calling end() on an ended span." in caplog.text


def test_no_context_token_is_kept_in_the_span(
    traced: tuple[FastSpans, InMemorySpanExporter],
) -> None:
    fast, _ = traced
    span: Any = fast.start("GET", Context(), {}, 1)
    token = trace_seam.span_attacher()(span, Context())
    assert trace.get_current_span() is span
    held = gc.get_referents(span) + list(vars(span).values())
    assert not any(isinstance(value, contextvars.Token) for value in held)
    trace_seam.restore_context(token, span)
    span.end()


def test_a_raising_processor_leaves_the_span_whole(
    traced: tuple[FastSpans, InMemorySpanExporter],
) -> None:
    fast, exporter = traced
    fast._tracer.span_processor.add_span_processor(Faulty("end"))
    span: Any = fast.start("GET", Context(), {"a": 1}, 1)
    with pytest.raises(RuntimeError, match="on_end failed"):
        span.end(end_time=3)
    assert not span.is_recording()
    assert (span.name, dict(span.attributes), span.end_time) == ("GET", {"a": 1}, 3)
    assert len(exporter.get_finished_spans()) == 1


def test_processors_that_take_request_spans_get_the_span_itself() -> None:
    class Takes(SpanProcessor):
        takes_ended_request_spans = True

        def __init__(self) -> None:
            self.ended: list[Any] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.ended.append(span)

    takes = Takes()
    provider = TracerProvider()
    provider.add_span_processor(takes)
    fast = spans_of(provider.get_tracer("takes"), compiled=True)
    span = fast.start("GET", Context(), {}, 1)
    span.end()
    assert takes.ended == [span]
    assert not gc.is_tracked(span)  # handed over ended: out of the collector's care


def test_the_fields_are_named_by_the_seam() -> None:
    cls = requestspan_py.CompiledRequestSpan
    assert cls is not None
    named = set(cls.__mro__[1].span_fields)  # type: ignore[attr-defined]
    assert named <= set(trace_seam.READABLE_FIELDS)
    assert named == {"_" + role for role in requestspan_py.helpers.SPAN_FIELDS}
