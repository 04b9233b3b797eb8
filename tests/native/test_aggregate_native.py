"""The compiled metrics recorder (`aggregator.Recorder`) against its Python twin.

Both record the same measurements, each into its own stream table, under the
same current spans (none, sampled, not sampled, a span whose context is not the
SDK's); the tables must then hold the same series: sums, min/max, bucket
counts, first times aside, and per bucket the same exemplar (value, key, span
context; its time within the test's). Also: a new key past the cardinality
limit goes to the overflow series; a failing admit leaves the lock free; bad
constructor arguments are refused.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from hooktel import _core
from hooktel.otel import _sdk
from hooktel.otel._sdk.metrics import Stream, span_context_layout
from hooktel.otel.metrics import aggregator_py
from hooktel.otel.metrics import streamtable as _streamtable

compiled = _core.load("hooktel.otel.metrics.aggregator")
NAMES = ("method", "route", "status")
KEYS = [("GET", "/a", 200), ("GET", "/b", 404), ("POST", None, 500), ("PURGE", "/a", None)]


class _OtherContext(SpanContext):
    """A span context of another class: its flags are read through the property."""


SPANS: dict[str, Any] = {
    "none": None,
    "sampled": NonRecordingSpan(SpanContext(0xA, 0xB, False, TraceFlags(1))),
    "unsampled": NonRecordingSpan(SpanContext(0xC, 0xD, False, TraceFlags(0))),
    "other-class": NonRecordingSpan(_OtherContext(0xE, 0xF, False, TraceFlags(1))),
}


def _table(bounds: tuple[float, ...], min_max: bool, limit: int = 2000) -> _streamtable.StreamTable:
    return _streamtable.StreamTable(Stream(bounds, min_max, None, limit, False, None, True), NAMES)


def _recorders(table_c: Any, table_py: Any) -> tuple[Any, Any]:
    assert compiled is not None
    var = _sdk.context_var()
    assert var is not None
    span_context_type, flags_index = span_context_layout()

    def recorder(make: Any, table: Any) -> Any:
        return make(
            table.series,
            table.bounds,
            table.admit,
            table.lock,
            var,
            _sdk.SPAN_KEY,
            span_context_type,
            flags_index,
            table.min_max,
        )

    return recorder(compiled.Recorder, table_c), recorder(aggregator_py.Recorder, table_py)


@contextmanager
def _current(span: Any) -> Any:
    current = trace.set_span_in_context(span) if span is not None else context.Context()
    token = context.attach(current)
    try:
        yield
    finally:
        context.detach(token)


def _comparable(table: Any, since: int, until: int) -> dict[Any, Any]:
    """The series without their first times; exemplar times checked, then left out."""
    found = {}
    for key, series in table.series.items():
        exemplars = []
        for exemplar in series[_streamtable.EXEMPLARS]:
            if exemplar is None:
                exemplars.append(None)
                continue
            value, when, full_key, span_context = exemplar
            assert since <= when <= until
            exemplars.append((value, full_key, span_context))
        found[key] = (series[: _streamtable.FIRST_NS], exemplars, series[_streamtable.COUNTS :])
    return found


values = st.one_of(
    st.floats(min_value=0, max_value=20, allow_nan=False),
    st.integers(min_value=0, max_value=20),
)
bounds_strategy = st.lists(
    st.floats(min_value=0, max_value=20, allow_nan=False), max_size=6, unique=True
).map(lambda b: tuple(sorted(b)))


@settings(max_examples=150, deadline=None)
@given(
    bounds=bounds_strategy,
    min_max=st.booleans(),
    limit=st.integers(min_value=1, max_value=5),
    measurements=st.lists(
        st.tuples(values, st.sampled_from(KEYS), st.sampled_from(sorted(SPANS))), max_size=40
    ),
)
def test_same_series_as_the_python_twin(
    bounds: tuple[float, ...],
    min_max: bool,
    limit: int,
    measurements: list[tuple[float, tuple[Any, ...], str]],
) -> None:
    table_c, table_py = _table(bounds, min_max, limit), _table(bounds, min_max, limit)
    record_c, record_py = _recorders(table_c, table_py)
    since = time.time_ns()
    for value, key, span in measurements:
        with _current(SPANS[span]):
            record_c(value, key)
            record_py(value, key)
    until = time.time_ns()
    assert list(table_c.series) == list(table_py.series)
    assert _comparable(table_c, since, until) == _comparable(table_py, since, until)
    assert not table_c.lock.locked()


def test_the_overflow_series_past_the_limit() -> None:
    table_c, table_py = _table((1.0,), True, limit=1), _table((1.0,), True, limit=1)
    record_c, _ = _recorders(table_c, table_py)
    for key in KEYS:
        record_c(0.5, key)
    assert list(table_c.series) == [KEYS[0], _streamtable.OVERFLOW]
    assert table_c.series[_streamtable.OVERFLOW][_streamtable.COUNTS] == 3


def test_a_failing_admit_leaves_the_lock_free() -> None:
    table_c, table_py = _table((1.0,), True), _table((1.0,), True)

    def admit(key: Any) -> Any:
        raise RuntimeError("admit failed")

    table_c.admit = admit  # type: ignore[method-assign]
    record_c, _ = _recorders(table_c, table_py)
    with pytest.raises(RuntimeError, match="admit failed"):
        record_c(0.5, KEYS[0])
    assert not table_c.lock.locked()


def test_a_value_that_cannot_be_compared_raises_as_in_the_twin() -> None:
    table_c, table_py = _table((1.0,), True), _table((1.0,), True)
    record_c, record_py = _recorders(table_c, table_py)
    for record in (record_c, record_py):
        with pytest.raises(TypeError):
            record("not a number", KEYS[0])
    assert not table_c.lock.locked() and not table_py.lock.locked()


@pytest.mark.parametrize(
    "change",
    [
        {"series": []},
        {"bounds": [1.0]},
        {"admit": None},
        {"context_var": None},
        {"span_context_type": int},
        {"lock": object()},
    ],
    ids=lambda change: next(iter(change)),
)
def test_bad_arguments_are_refused(change: dict[str, Any]) -> None:
    assert compiled is not None
    var = _sdk.context_var()
    arguments: dict[str, Any] = {
        "series": {},
        "bounds": (1.0,),
        "admit": lambda key: None,
        "lock": threading.Lock(),
        "context_var": var,
        "span_key": _sdk.SPAN_KEY,
        "span_context_type": SpanContext,
        "flags_index": 3,
        "min_max": True,
        **change,
    }
    with pytest.raises((TypeError, AttributeError)):
        compiled.Recorder(**arguments)


def test_the_recorder_waits_while_someone_holds_the_lock() -> None:
    """A collection (or the Python twin) holding the stream's lock is never raced."""
    table_c, table_py = _table((1.0,), True), _table((1.0,), True)
    record_c, _ = _recorders(table_c, table_py)
    record_c(0.5, KEYS[0])  # the key is known: the recorder may go without the lock
    series = table_c.series[KEYS[0]]
    with table_c.lock:
        recording = threading.Thread(target=record_c, args=(0.5, KEYS[0]))
        recording.start()
        recording.join(0.2)  # bounded: it must still be waiting for the lock
        assert recording.is_alive()
        assert series[_streamtable.COUNTS] == 1
    recording.join(5)
    assert series[_streamtable.COUNTS] == 2
