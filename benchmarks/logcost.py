"""What log correlation adds to each `logging` record, in ns: hooktel's against contrib's.

Each side's record factory is what its instrumentation installs with trace context
on (`LoggingInstrumentation().instrument(inject_trace_context=True)`, and contrib's
`LoggingInstrumentor` the same, without its logs handler, which hooktel has no
counterpart of); both are taken out of `logging` again before timing, and called as
`Logger.makeRecord` calls a factory. The added cost is a factory's time per record
less the plain `logging.LogRecord`'s, timed together in one round, in alternating
order (each the best of 15 short timings), the median of the rounds (`--repeats`, at
least 7), in a sampled SDK span
(the case correlation is for) and outside any span.

    .venv/bin/python -m benchmarks.logcost [--seconds 0.03] [--repeats 9]

Standalone on purpose: nothing here is shared with the other benchmarks.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import timeit
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from hooktel.otel import LoggingInstrumentation

Factory = Callable[..., logging.LogRecord]
ARGS = ("bench", logging.INFO, __file__, 1, "message %s", ("x",), None)


def installed_factory(instrumentor: Any, provider: TracerProvider, **options: Any) -> Factory:
    """The record factory `instrumentor` installs, taken out of `logging` again."""
    before = logging.getLogRecordFactory()
    instrumentor.instrument(tracer_provider=provider, inject_trace_context=True, **options)
    factory = logging.getLogRecordFactory()
    instrumentor.uninstrument()
    assert factory is not before and logging.getLogRecordFactory() is before
    return factory


SAMPLES = 15  # short timings per factory and round, of which the best counts


def per_record(factory: Factory, number: int) -> float:
    """ns per record made by `factory`: the best of `SAMPLES` short timings, the one the
    other processes of a shared machine took the least from."""
    timings = timeit.Timer(lambda: factory(*ARGS)).repeat(SAMPLES, number)
    return min(timings) / number * 1e9


def calls_for(factory: Factory, seconds: float) -> int:
    """How many calls of `factory` make one of its `SAMPLES` timings in `seconds`."""
    number = 1000
    while (elapsed := timeit.Timer(lambda: factory(*ARGS)).timeit(number)) < 0.02:
        number *= 2
    return int(number * seconds / elapsed / SAMPLES) or 1


def added_costs(
    factories: dict[str, Factory], seconds: float, repeats: int
) -> dict[str, list[float]]:
    """Per side, each round's ns per record above the plain `LogRecord`'s."""
    number = calls_for(logging.LogRecord, seconds)
    added: dict[str, list[float]] = {name: [] for name in factories}
    names = list(factories)
    for round_ in range(repeats):
        order = names if round_ % 2 == 0 else names[::-1]
        timed = {name: per_record(factories[name], number) for name in order}
        base = per_record(logging.LogRecord, number)
        for name in names:
            added[name].append(timed[name] - base)
    return added


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.03, help="per factory and round")
    parser.add_argument("--repeats", type=int, default=9, help="rounds (at least 7)")
    options = parser.parse_args(argv)
    repeats = max(7, options.repeats)
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    factories = {
        "hooktel": installed_factory(LoggingInstrumentation(), provider),
        "contrib": installed_factory(
            LoggingInstrumentor(), provider, enable_log_auto_instrumentation=False
        ),
    }
    tracer = provider.get_tracer("bench")
    print(f"added ns per logging record, median of {repeats} alternating rounds")
    for where, scope in (
        ("in a span", lambda: tracer.start_as_current_span("request")),
        ("outside a span", nullcontext),
    ):
        with scope():
            added = added_costs(factories, options.seconds, repeats)
        hooktel, contrib = (statistics.median(added[name]) for name in ("hooktel", "contrib"))
        print(
            f"{where:15} hooktel {hooktel:7.1f}  contrib {contrib:7.1f}  "
            f"ratio {hooktel / contrib:.2f}"
        )


if __name__ == "__main__":
    main()
