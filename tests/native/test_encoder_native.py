"""The OTLP encoders against the stock exporter's: the C twin, its Python specification, stock.

For the same hypothesis-generated spans (every attribute type including arrays
and maps, events, links, status, trace state, flags, dropped counts, resource,
instrumentation scope, non-ASCII and empty values, values OTLP cannot carry),
the Python twin's bytes decode with opentelemetry-proto to the message the
stock encoder builds, and leave out exactly the attributes it logs as failed;
the C twin returns the very same bytes. These run under ASan/UBSan in
scripts/asan.sh, with the hostile cases at the end (containers changed while
they are encoded, self-referencing values, huge and deep values).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
    encode_spans as stock_encode_spans,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from hooktel import _core
from hooktel.otel import _sdk
from hooktel.otel.export import encoder_py as _encoder_py
from hooktel.otel.export import thread  # chooses the encoder, and configures the compiled one

native = _core.load("hooktel.otel.export.encoder") if thread.ENCODER_NATIVE else None
STOCK_LOGGER = "opentelemetry.exporter.otlp.proto.common._internal"

# -- strategies ---------------------------------------------------------------------------

text = st.text(max_size=12)  # any Unicode but lone surrogates: non-ASCII, empty
keys = st.one_of(text, st.sampled_from(["http.route", "url.path", "é", ""]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    text,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=8),
)
unencodable = st.one_of(
    st.integers(2**63, 2**80),
    st.integers(-(2**80), -(2**63) - 1),
    st.just("\ud800"),
    st.builds(object),
    st.just({1, 2}),
)
values = st.recursive(
    st.one_of(scalars, unencodable),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(text, st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
)
attribute_dicts = st.dictionaries(keys, values, max_size=6)


@st.composite
def attributes(draw: st.DrawFn) -> Any:
    """None, a plain dict, or BoundedAttributes (which may have dropped some)."""
    kind = draw(st.sampled_from(["none", "dict", "bounded"]))
    if kind == "none":
        return None
    items = draw(attribute_dicts)
    if kind == "dict":
        return items
    valid = {k: v for k, v in items.items() if isinstance(v, (str, bool, int, float))}
    return BoundedAttributes(draw(st.integers(0, 4)), valid, immutable=True)


trace_ids = st.integers(0, 2**128 - 1)
span_ids = st.integers(0, 2**64 - 1)
trace_states = st.one_of(
    st.none(),
    st.lists(
        st.tuples(
            st.sampled_from(["congo", "rojo", "t61rcwkgmzd@dt", "k"]),
            st.sampled_from(["t61rcWkgMzE", "00f067aa0ba902b7", "x", "a b"]),
        ),
        max_size=3,
    ).map(lambda pairs: TraceState(list(dict(pairs).items()))),
)


@st.composite
def contexts(draw: st.DrawFn) -> SpanContext:
    return SpanContext(
        draw(trace_ids),
        draw(span_ids),
        draw(st.booleans()),
        TraceFlags(draw(st.integers(0, 255))),
        draw(trace_states),
    )


times = st.one_of(st.none(), st.integers(0, 2**64 - 1))


@st.composite
def events(draw: st.DrawFn) -> Any:
    made = [
        Event(draw(text), draw(attributes()), draw(st.integers(0, 2**64 - 1)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    if draw(st.booleans()):
        return made
    bounded: BoundedList[Event] = BoundedList(draw(st.integers(0, 3)))
    bounded.extend(made)
    return bounded


@st.composite
def links(draw: st.DrawFn) -> Any:
    made = [Link(draw(contexts()), draw(attributes())) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        return tuple(made)
    bounded: BoundedList[Link] = BoundedList(draw(st.integers(0, 2)))
    bounded.extend(made)
    return bounded


statuses = st.one_of(
    st.none(),
    st.builds(Status, st.sampled_from(list(StatusCode)), st.one_of(st.none(), text)),
)
# The stock exporter groups spans by hashing their resource, which dumps its attributes
# as JSON: resource attributes stay JSON-able.
resources = st.builds(
    Resource,
    st.dictionaries(
        keys.filter(bool),
        st.one_of(
            st.booleans(), text, st.integers(-(2**63), 2**63 - 1), st.lists(text, max_size=2)
        ),
        max_size=4,
    ),
    st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0"]),
)
scopes = st.one_of(
    st.none(),
    st.builds(
        InstrumentationScope,
        text,
        st.one_of(st.none(), text),
        st.one_of(st.none(), st.just("https://s")),
        st.one_of(st.none(), st.dictionaries(keys, scalars, max_size=3)),
    ),
)


@st.composite
def span_batches(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans sharing a few resources and scopes (some equal but distinct objects)."""
    resource_pool = draw(st.lists(resources, min_size=1, max_size=3))
    resource_pool.append(Resource(dict(resource_pool[0].attributes), resource_pool[0].schema_url))
    scope_pool = draw(st.lists(scopes, min_size=1, max_size=3))
    spans = []
    for _ in range(draw(st.integers(0, 5))):
        spans.append(
            ReadableSpan(
                name=draw(st.one_of(text, st.none())),
                context=draw(contexts()),
                parent=draw(st.one_of(st.none(), contexts())),
                resource=draw(st.sampled_from(resource_pool)),
                attributes=draw(attributes()),
                events=draw(events()),
                links=draw(links()),
                kind=draw(st.sampled_from(list(SpanKind))),
                status=draw(statuses),
                start_time=draw(times),
                end_time=draw(times),
                instrumentation_scope=draw(st.sampled_from(scope_pool)),
            )
        )
    return spans


# -- helpers ------------------------------------------------------------------------------


class _CountFailures(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Failed to encode key"):
            self.count += 1


@pytest.fixture(scope="module")
def stock_failures() -> Iterator[_CountFailures]:
    """Counts the attributes the stock encoder leaves out (it logs each one)."""
    handler = _CountFailures()
    logger = logging.getLogger(STOCK_LOGGER)
    logger.addHandler(handler)
    logger.propagate = False  # thousands of expected tracebacks stay off the output
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def decoded(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def stock(spans: list[ReadableSpan], failures: _CountFailures) -> tuple[bytes, int]:
    before = failures.count
    data = stock_encode_spans(spans).SerializeToString()
    return data, failures.count - before


def both(spans: Any) -> tuple[bytes, int]:
    """The Python twin's result, checked to be the C twin's too (where it is built)."""
    expected = _encoder_py.encode_spans(spans)
    if native is not None:
        assert native.encode_spans(spans) == expected
    return expected


SETTINGS = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)

# -- the differential tests ---------------------------------------------------------------


@pytest.mark.pure_python
@SETTINGS
@given(spans=span_batches())
def test_python_twin_sends_what_the_stock_encoder_sends(
    spans: list[ReadableSpan], stock_failures: _CountFailures
) -> None:
    expected, left_out = stock(spans, stock_failures)
    data, python_left_out = _encoder_py.encode_spans(spans)
    assert decoded(data) == decoded(expected)
    assert python_left_out == left_out


@SETTINGS
@given(spans=span_batches())
def test_native_twin_writes_the_python_twins_bytes(
    spans: list[ReadableSpan], stock_failures: _CountFailures
) -> None:
    assert native is not None
    expected, left_out = stock(spans, stock_failures)
    data, native_left_out = native.encode_spans(spans)
    assert (data, native_left_out) == _encoder_py.encode_spans(spans)
    assert decoded(data) == decoded(expected)
    assert native_left_out == left_out


def _span(**fields: Any) -> ReadableSpan:
    base: dict[str, Any] = {
        "name": "GET /",
        "context": SpanContext(1, 2, False, TraceFlags(1)),
        "resource": Resource({"service.name": "s"}),
        "start_time": 1,
        "end_time": 2,
    }
    base.update(fields)
    return ReadableSpan(**base)


@pytest.mark.pure_python
@pytest.mark.parametrize(
    "fields",
    [
        {"start_time": -1},
        {"end_time": 2**64},
        {"start_time": 1.5},
        {"name": 7},
        {"name": "\ud800"},
        {"kind": None},
        {"context": SpanContext(-1, 2, False)},
        {"context": SpanContext(2**128, 2, False)},
        {"parent": SpanContext(1, 2**64, False)},
    ],
    ids=repr,
)
def test_a_span_that_cannot_be_sent_raises_in_all_three(
    fields: dict[str, Any], stock_failures: _CountFailures
) -> None:
    spans = [_span(), _span(**fields)]
    with pytest.raises(Exception):  # noqa: B017 - the classes differ: protobuf's, Python's
        stock_encode_spans(spans).SerializeToString()
    with pytest.raises((TypeError, ValueError, OverflowError, KeyError)):
        _encoder_py.encode_spans(spans)
    if native is not None:
        with pytest.raises((TypeError, ValueError, OverflowError, KeyError)):
            native.encode_spans(spans)


@pytest.mark.pure_python
def test_nan_and_infinities_are_sent_as_doubles(stock_failures: _CountFailures) -> None:
    spans = [_span(attributes={"nan": math.nan, "inf": math.inf, "ninf": -math.inf})]
    data, left_out = both(spans)
    assert (data, left_out) == stock(spans, stock_failures)


# -- hostile input (these matter most under ASan) -----------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.pure_python
def test_values_nested_deeper_than_the_limit_are_left_out() -> None:
    limit = _encoder_py.MAX_DEPTH
    spans = [_span(attributes={"ok": _nested(limit), "deep": _nested(limit + 1)})]
    data, left_out = both(spans)
    assert left_out == 1
    (kept,) = decoded(data).resource_spans[0].scope_spans[0].spans[0].attributes
    assert kept.key == "ok"


@pytest.mark.pure_python
def test_a_list_that_contains_itself_is_left_out() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    mapping: dict[str, Any] = {}
    mapping["self"] = mapping
    _, left_out = both([_span(attributes={"loop": loop, "map": mapping, "ok": 1})])
    assert left_out == 2


class _Shrinking(Mapping[str, Any]):
    """A mapping whose items() empties the span's attributes dict (and itself) as it goes."""

    def __init__(self, victim: dict[str, Any]) -> None:
        self.victim = victim
        self.data = {"a": "x" * 1000, "b": [1, 2, 3]}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Any:
        self.victim.clear()
        return list(self.data.items())


@pytest.mark.pure_python
def test_attributes_changed_while_they_are_encoded_stay_safe() -> None:
    """The C twin holds what it reads: a dict emptied under it frees nothing it still uses."""
    attributes: dict[str, Any] = {"first": "y" * 5000}
    attributes["map"] = _Shrinking(attributes)
    attributes["last"] = ["z" * 3000]
    spans = [_span(attributes=attributes)]
    if native is not None:
        data, _ = native.encode_spans(spans)
        decoded(data)  # well formed, whatever the dict held by the end
    _encoder_py.encode_spans([_span(attributes=dict(attributes))])


class _ResourceThatEmptiesTheBatch(Resource):
    """A resource whose __eq__ empties the caller's list of spans."""

    batch: list[Any]

    def __eq__(self, other: object) -> bool:
        self.batch.clear()
        return False

    __hash__ = Resource.__hash__


@pytest.mark.pure_python
def test_a_batch_emptied_while_it_is_encoded_stays_safe() -> None:
    resources = [_ResourceThatEmptiesTheBatch({"n": i}) for i in range(2)]
    batch = [_span(resource=resources[i % 2], attributes={"i": i}) for i in range(6)]
    for resource in resources:
        resource.batch = batch
    if native is not None:
        data, _ = native.encode_spans(list(batch))
        assert _span_count(decoded(data)) == 6
        batch[:] = [_span(resource=resources[i % 2]) for i in range(6)]
        data, _ = native.encode_spans(batch)  # the caller's own list, emptied mid-way
        assert _span_count(decoded(data)) == 6


def _span_count(message: ExportTraceServiceRequest) -> int:
    return sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)


@pytest.mark.pure_python
def test_large_values_and_many_spans_round_trip() -> None:
    big = "é" * 300_000  # lengths that need 3-byte varints, bodies moved when the guess is off
    spans = [_span(attributes={"big": big, "blob": b"\x00" * 70_000})] + [
        _span(attributes={"i": i, "s": "x" * (i % 300)}) for i in range(2000)
    ]
    data, left_out = both(spans)
    assert left_out == 0
    message = decoded(data)
    sent = message.resource_spans[0].scope_spans[0].spans
    assert len(sent) == 2001
    assert sent[0].attributes[0].value.string_value == big


def test_the_encoder_accepts_any_iterable_of_spans() -> None:
    assert native is not None
    spans = [_span(), _span(name="b")]
    assert native.encode_spans(iter(spans)) == native.encode_spans(tuple(spans))
    assert native.encode_spans([]) == (b"", 0)
    with pytest.raises(TypeError):
        native.encode_spans(5)


@pytest.mark.skipif(not os.environ.get("HOOKTEL_EXPECT_SANITIZED"), reason="ASan run only")
def test_the_sanitized_encoder_is_the_one_tested() -> None:
    """scripts/asan.sh builds into a copy of src/: the encoder under test must be that one."""
    assert native is not None
    root = Path(__file__).resolve().parents[2]
    assert not Path(native.__file__).is_relative_to(root)


def test_encoding_again_and_again_keeps_no_memory() -> None:
    """Every reference the C twin takes is released, on success and on error: no growth."""
    assert native is not None
    import gc
    import tracemalloc

    def batch() -> list[ReadableSpan]:
        context = SpanContext(1, 2, True, TraceFlags(1), TraceState([("k", "v"), ("a", "b")]))
        return [
            _span(
                context=context,
                parent=context,
                attributes=BoundedAttributes(
                    8, {"s": "é", "i": 1, "l": ("a", "b"), "f": 0.5}, immutable=True
                ),
                events=[Event("e", {"m": {"k": [1, None]}, "bad": object()}, 5)],
                links=[Link(context, {"x": b"y"})],
                status=Status(StatusCode.ERROR, "no"),
                instrumentation_scope=InstrumentationScope("s", "1", "u", {"a": 1}),
            )
            for _ in range(8)
        ]

    def once() -> None:
        assert native is not None
        spans = batch()
        native.encode_spans(spans)
        for bad in ({"kind": None}, {"end_time": -1}, {"parent": SpanContext(1, -2, False)}):
            with pytest.raises((KeyError, OverflowError)):
                native.encode_spans([*spans, _span(**bad)])  # the error paths release too

    for _ in range(200):
        once()
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            once()
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert growth < 64 * 1024, f"{growth} bytes kept over 2000 batches"


def test_the_fields_read_are_the_ones_it_is_given() -> None:
    """No SDK field name is written in C: another instance of the compiled module, given
    other names by `configure`, reads those (and refuses to encode before it is given any)."""
    assert native is not None
    spec = importlib.util.spec_from_file_location(native.__name__, native.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    with pytest.raises(RuntimeError):
        fresh.encode_spans([])
    span = _span(attributes=BoundedAttributes(8, {"k": "v"}, immutable=True))
    renamed = SimpleNamespace(**{f"x{f}": getattr(span, f) for f in _sdk.READABLE_FIELDS})
    fresh.configure(
        readable_fields={f.removeprefix("_"): f"x{f}" for f in _sdk.READABLE_FIELDS},
        attributes_dict=_sdk.ATTRIBUTES_DICT,
    )
    assert fresh.encode_spans([renamed]) == native.encode_spans([span])
