"""What one metric stream aggregated since the SDK last collected it, per attribute set.

A stream is one view of a histogram in one reader (see `_sdk.metrics.Stream`). Its
table maps each attribute set it keeps to a series: what `Histogram.record()`
would have accumulated in the SDK's aggregation for that set, and `drain()`
hands the series over, ready for `_sdk.metrics.before_collect` to feed to the SDK.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from time import time_ns
from typing import Any

from .._sdk import metrics as seam
from .._sdk.metrics import Series, Stream

Key = tuple[Any, ...]
"""Attribute values in the order of the histogram's attribute names; None when absent."""

OVERFLOW: Key = ("otel.metric.overflow",)  # no real key has this shape

# One attribute set's aggregate since the last collection is a list (what the compiled
# recorder of `hooktel.otel.metrics.aggregator` works on directly): its sum, min, max, the time of
# its first measurement, its exemplars, then its bucket counts. `exemplars` holds per
# bucket the last measurement the exemplar filter let through, as
# `(value, time_unix_nano, full key, span context or None)`, or None.
SUM, MIN, MAX, FIRST_NS, EXEMPLARS, COUNTS = range(6)
SeriesList = list[Any]


def new_series(buckets: int, first_ns: int) -> SeriesList:
    return [0, math.inf, -math.inf, first_ns, [None] * buckets, *([0] * buckets)]


class StreamTable:
    """What one stream aggregated, keyed by the attribute values it keeps."""

    def __init__(self, stream: Stream, names: tuple[str, ...]) -> None:
        self.stream = stream
        self.names = names
        self.bounds = stream.boundaries
        self.buckets = len(stream.boundaries) + 1
        self.min_max = stream.record_min_max
        keys = stream.attribute_keys
        # A view's attribute_keys: the positions of the key it keeps.
        self.positions: tuple[int, ...] | None = (
            None if keys is None else tuple(i for i, name in enumerate(names) if name in keys)
        )
        self.series: dict[Key, SeriesList] = {}  # cleared, never replaced: closures hold it
        self.lock = threading.Lock()

    def add(self, key: Key, value: float, when: int, span: Any) -> None:
        """Aggregate one measurement; `when` is 0 unless it may become an exemplar."""
        full_key = key
        if self.positions is not None:
            key = tuple([key[i] for i in self.positions])
        lock = self.lock
        lock.acquire()
        try:
            series = self.series.get(key) or self.admit(key)
            series[SUM] += value
            bucket = bisect_left(self.bounds, value)
            series[COUNTS + bucket] += 1
            if self.min_max:
                # Comparisons, not min() and max(): a builtin call costs ~50 ns more.
                if value < series[MIN]:  # noqa: PLR1730
                    series[MIN] = value
                if value > series[MAX]:  # noqa: PLR1730
                    series[MAX] = value
            if when:
                # The SDK's reservoir for explicit buckets keeps the last one per bucket.
                # (It also keeps the span ids it saw last in a bucket when a later
                # measurement comes without a span: never here, where the span
                # instrument always leaves a span current, valid or not.)
                series[EXEMPLARS][bucket] = (value, when, full_key, span)
        finally:
            lock.release()

    def admit(self, key: Key) -> SeriesList:
        """A new attribute set, or the overflow point once the SDK would fold it there.

        Called with the lock held. The table mirrors the attribute sets the SDK
        holds for the stream, so it reaches the cardinality limit when the SDK does.
        """
        table = self.series
        if len(table) >= self.stream.cardinality_limit:
            key = OVERFLOW
            series = table.get(key)
            if series is not None:
                return series
        series = table[key] = new_series(self.buckets, time_ns())
        return series

    def drain(self) -> list[Series]:
        """Everything aggregated since the last call, ready for the SDK; starts afresh.

        The attribute sets stay known (cumulative temporality: the SDK keeps
        them, and counts them against the cardinality limit) unless the stream
        forgets them at each collection (delta).
        """
        with self.lock:
            table = self.series
            if self.stream.resets_on_collect:
                ready = list(table.items())
                table.clear()
            else:
                ready = [(key, s) for key, s in table.items() if any(s[COUNTS:])]
                for key, series in ready:
                    table[key] = new_series(self.buckets, series[FIRST_NS])
        return [self._handover(key, series) for key, series in ready]

    def _handover(self, key: Key, series: SeriesList) -> Series:
        if key is OVERFLOW:
            attributes = dict(seam.OVERFLOW_ATTRIBUTES)
        elif self.positions is None:
            attributes = attributes_of(key, self.names)
        else:
            attributes = attributes_of(key, tuple(self.names[i] for i in self.positions))
        return Series(
            attributes=attributes,
            counts=series[COUNTS:],
            sum=series[SUM],
            min=series[MIN],
            max=series[MAX],
            first_ns=series[FIRST_NS],
            exemplars=[
                None if e is None else (e[0], e[1], attributes_of(e[2], self.names), e[3])
                for e in series[EXEMPLARS]
            ],
        )


def attributes_of(key: Key, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: value for name, value in zip(names, key, strict=True) if value is not None}
