"""Histograms aggregated on the request path, handed to the SDK when it collects.

`Histogram.record()` of the SDK costs 5-8 us: it validates and copies the
attributes, builds a `Measurement`, asks the exemplar filter through the
context API, and walks readers, views and attribute sets under locks, for every
request. What a histogram point needs is far less: one bucket count, the sum,
min and max, and per bucket the last exemplar. `AggregatedHistogram` keeps
exactly that, per metric stream (each reader's each view) and attribute set,
behind one lock per stream, and `_sdk.metrics.before_collect` hands it to the SDK's
own aggregations right before the SDK collects them, so every reader and
exporter sees what it would have seen had each request been recorded one by
one. Where that cannot be exact (`_sdk.metrics.histogram_streams` says when), the
measurements go to `Histogram.record()` instead (`SdkHistogram`).
"""

from __future__ import annotations

import contextvars
import os
import threading
import weakref
from collections.abc import Callable
from time import time_ns
from typing import Any, cast

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api

from ... import _core
from .. import _sdk as _shared
from .._sdk import metrics as seam
from .._sdk.metrics import ExemplarRule, Stream
from .streamtable import Key, StreamTable, attributes_of

Record = Callable[[float, Key], None]

aggregator = _core.twin("hooktel.otel.metrics.aggregator")
"""The compiled per-request recorder, or its Python twin `aggregator_py`."""


class SdkHistogram:
    """`record(value, key)` straight to the SDK's (or any API) `Histogram.record()`."""

    def __init__(self, instrument: Any, names: tuple[str, ...]) -> None:
        self._instrument = instrument
        self._names = names

    def record(self, value: float, key: Key) -> None:
        self._instrument.record(value, attributes_of(key, self._names))


class AggregatedHistogram:
    """`record(value, key)` for one SDK histogram, aggregated by hooktel.

    Build it with `for_instrument`, which returns None when hooktel cannot
    aggregate for that instrument exactly as the SDK would.
    """

    record: Record

    def __init__(
        self, instrument: Any, names: tuple[str, ...], provider: Any, streams: list[Stream]
    ) -> None:
        self._instrument = instrument
        self._names = names
        self._tables: tuple[StreamTable, ...] = ()
        self._fallback: SdkHistogram | None = None  # set once a reader needs the SDK's record()
        self._enabled = seam.watch_enabled(instrument, self._switch)
        self._rule, self._filter = seam.exemplar_filter(provider)
        self._context_var = _shared.context_var()
        self._install(streams)
        seam.watch_readers(instrument, self._readers_changed)
        _ALL.add(self)

    @classmethod
    def for_instrument(
        cls, instrument: Any, names: tuple[str, ...], provider: Any
    ) -> AggregatedHistogram | None:
        """The one `AggregatedHistogram` of `instrument` (instrumenting again reuses it)."""
        with _created_lock:
            found = _created.get(instrument)
            if found is None:
                streams = seam.histogram_streams(instrument)
                if streams is None:
                    return None
                found = _created[instrument] = cls(instrument, names, provider, streams)
            return found

    def _switch(self, enabled: bool) -> None:
        self._enabled = enabled
        self._refresh()

    def _refresh(self) -> None:
        self.record = self._fallback.record if self._fallback else self._recorder()

    def _install(self, streams: list[Stream]) -> None:
        """One table per stream; a stream already known keeps its table (and what it holds)."""
        known = {id(table.stream.match): table for table in self._tables}
        tables = []
        for stream in streams:
            table = known.get(id(stream.match)) or StreamTable(stream, self._names)
            seam.before_collect(stream, table.drain)
            tables.append(table)
        self._tables = tuple(tables)
        self._refresh()

    def _readers_changed(self) -> None:
        streams = seam.histogram_streams(self._instrument)
        if streams is None:
            # A new reader aggregates in a way hooktel cannot: the SDK records from now
            # on; what the tables hold still goes out at the next collections.
            self._fallback = SdkHistogram(self._instrument, self._names)
            self._refresh()
        else:
            self._install(streams)

    def renew_locks(self) -> None:
        for table in self._tables:
            table.lock = threading.Lock()
        self._refresh()  # the compiled recorder holds the lock it was made with

    def _recorder(self) -> Record:
        """The record function for the current tables: one stream of all attributes under
        the trace-based filter (the default) gets a fused one, the rest a loop."""
        tables = self._tables
        if not tables or not self._enabled:  # every stream dropped, or the meter disabled
            return _nothing
        context_var = self._context_var
        rule = self._rule
        if (
            len(tables) == 1
            and tables[0].positions is None
            and context_var is not None
            and rule == ExemplarRule.TRACE_BASED
        ):
            return _fused(tables[0], context_var)
        exemplar = self._exemplar_function()

        def record(value: float, key: Key) -> None:
            when, span = exemplar(value, key)
            for table in tables:
                table.add(key, value, when, span)

        return record

    def _exemplar_function(self) -> Callable[[float, Key], tuple[int, Any]]:
        """(time, span context) when the provider's exemplar filter lets a measurement
        through (as the SDK asks it), else (0, None)."""
        rule, names, exemplar_filter = self._rule, self._names, self._filter

        def exemplar(value: float, key: Key) -> tuple[int, Any]:
            if rule == ExemplarRule.ALWAYS_OFF:
                return 0, None
            span = trace_api.get_current_span()
            context = None if span is trace_api.INVALID_SPAN else span.get_span_context()
            if rule == ExemplarRule.TRACE_BASED:
                sampled = context is not None and context.trace_flags.sampled
                return (time_ns(), context) if sampled else (0, None)
            now = time_ns()
            if rule == ExemplarRule.CUSTOM and not exemplar_filter.should_sample(
                value, now, attributes_of(key, names), context_api.get_current()
            ):
                return 0, None
            return now, context

        return exemplar


def _nothing(value: float, key: Key) -> None:
    """Every stream of the instrument is dropped by a view, or its meter is disabled."""


def _fused(table: StreamTable, context_var: contextvars.ContextVar[Any]) -> Record:
    """The record function of the default configuration: `Recorder` of the compiled
    `hooktel.otel.metrics.aggregator`, or of its Python twin `aggregator_py`."""
    span_context_type, flags_index = seam.span_context_layout()
    return cast(
        Record,
        aggregator.Recorder(
            table.series,
            table.bounds,
            table.admit,
            table.lock,
            context_var,
            _shared.SPAN_KEY,
            span_context_type,
            flags_index,
            table.min_max,
        ),
    )


_created: weakref.WeakKeyDictionary[Any, AggregatedHistogram] = weakref.WeakKeyDictionary()
_created_lock = threading.RLock()  # taken when instrumenting, never from a hook
_ALL: weakref.WeakSet[AggregatedHistogram] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A lock a thread held at fork time would never be released in the child: new ones."""
    for histogram in list(_ALL):
        histogram.renew_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
