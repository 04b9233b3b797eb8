"""The Python twin of `hooktel.otel.metrics.aggregator` (aggregator.c): its specification.

`Recorder(...)(value, key)` records one measurement of the default configuration (one
stream of all attributes, the trace-based exemplar filter): `StreamTable.add` and the
exemplar filter in one function, with every name it uses local. The compiled
`Recorder` does the same through the same protocol calls (tests/native compares them);
`HOOKTEL_PURE_PYTHON=1`, or no compiler at install time, runs this one.
"""

from __future__ import annotations

import contextvars
import threading
from bisect import bisect_left
from collections.abc import Callable
from time import time_ns
from typing import Any

from .streamtable import COUNTS, EXEMPLARS, MAX, MIN, SUM, Key, SeriesList

Record = Callable[[float, Key], None]


def Recorder(  # noqa: PLR0917 - the compiled Recorder's arguments; a closure: the fastest call
    series: dict[Key, SeriesList],
    bounds: tuple[float, ...],
    admit: Callable[[Key], SeriesList],
    lock: threading.Lock,
    context_var: contextvars.ContextVar[Any],
    span_key: str,
    span_context_type: type[tuple[Any, ...]],
    flags_index: int,
    min_max: bool,
) -> Record:
    """The record function of one stream table (`StreamTable`'s `series`, `bounds`, `admit`,
    `lock` and `min_max`): the current span, found under `span_key` in the context
    `context_var` holds, gives the exemplar's span context when sampled; a span context of
    `span_context_type` has its trace flags at `flags_index`, any other has them as a property.
    """
    series_by_key, get_context = series, context_var.get

    def record(value: float, key: Key) -> None:
        exemplar = None
        context = get_context(None)
        span = None if context is None else context.get(span_key)
        if span is not None:
            span_context = span.get_span_context()
            if type(span_context) is span_context_type:
                flags = span_context[flags_index]
            else:
                flags = span_context.trace_flags
            if flags & 1:  # sampled
                exemplar = (value, time_ns(), key, span_context)
        lock.acquire()
        try:
            one = series_by_key.get(key) or admit(key)
            one[SUM] += value
            bucket = bisect_left(bounds, value)
            one[COUNTS + bucket] += 1
            if min_max:
                # Comparisons, not min() and max(): a builtin call costs ~50 ns more.
                if value < one[MIN]:  # noqa: PLR1730
                    one[MIN] = value
                if value > one[MAX]:  # noqa: PLR1730
                    one[MAX] = value
            if exemplar is not None:  # as in `StreamTable.add`
                one[EXEMPLARS][bucket] = exemplar
        finally:
            lock.release()

    return record
