"""Per-request cost of the duration metric in ns, in-process: hooktel's path against the SDK's.

A whole request costs ~20 µs in-process with an IQR of several µs, too coarse
to see a metric of under 1 µs, so this times the metric alone, on the hooks
a hook point calls for one request (`Hooks.notify_start` and `notify_end`,
with the attributes `GET /items/{id}` -> 200 gives them), with a sampled
server span current (what the span instrument leaves current while the end
hook runs):

- `span instrument only`: the hooks with one instrument whose hooks do
  nothing, standing in for the span instrument;
- `+ metrics, hooktel`: the same plus the metrics instrument
  (`hooktel.otel.metrics.instrument.ServerMetrics`, aggregated by hooktel: the default);
- `+ metrics, SDK record()`: the same with `HOOKTEL_OTEL_FAST_PATH=0`, where
  the metrics instrument calls the SDK's `Histogram.record()`;
- `SDK Histogram.record()`: that call alone, with the six attributes hooktel
  records, what any instrumentation pays per request for this metric.

The added cost is the median over repeats of (with metrics - span instrument
only), each pair timed together in alternating order. Every setup collects
once before timing (so the per-stream state exists, as in a running service)
and the reader keeps cumulative temporality (the SDK's default).

    .venv/bin/python -m benchmarks.metriccost [--seconds 0.3] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from .inprocess import calls_for, iqr
from .otelsdk import environ
from .results import MetricCost

START: dict[str, Any] = {
    "operation.id": 1,
    "operation.timestamp": 1_795_559_429_048_647_752,
    "http.request.method": "GET",
    "url.scheme": "http",
    "url.path": "/items/42",
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "url.full": "http://127.0.0.1:8000/items/42",
    "client.address": "127.0.0.1",
    "client.port": 50000,
    "network.protocol.version": "1.1",
}
END: dict[str, Any] = {
    "operation.id": 1,
    "operation.duration": 105_727,
    "http.response.body.size": 17,
    "http.response.status_code": 200,
    "http.route": "/items/{id}",
}
RECORDED = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "network.protocol.version": "1.1",
    "http.response.status_code": 200,
    "http.route": "/items/{id}",
}
ONLY_SPANS = "span instrument only (a no-op stand-in)"
HOOKTEL_ROW = "+ metrics, hooktel (aggregated, default)"


def _noop(*args: object) -> None:
    """The stand-in span instrument's hooks."""


@contextmanager
def _request(fast: bool | None) -> Iterator[Callable[[], None]]:
    """One request's hooks: the stand-in alone (`fast` None) or with the metrics instrument."""
    import hooktel
    from hooktel._registry.hooks import native_hooks
    from hooktel.otel.metrics.instrument import ServerMetrics

    with ExitStack() as stack:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        stack.callback(provider.shutdown)
        if fast is not None:
            with environ("HOOKTEL_OTEL_FAST_PATH", "1" if fast else "0"):
                metrics = ServerMetrics.create(
                    {"meter_provider": provider}, None, ("bench", "1", "")
                )
            assert metrics is not None
            stack.enter_context(hooktel.attach(metrics.instrument("bench-metrics", "1")))
        stand_in = hooktel.Instrument(
            "http", "bench-spans", "1", on_operation_start=_noop, on_operation_end=_noop
        )
        stack.enter_context(hooktel.attach(stand_in))
        hooks = native_hooks()
        assert hooks is not None
        span = TracerProvider().get_tracer("bench").start_span("GET /items/{id}")
        token = context.attach(trace.set_span_in_context(span))
        stack.callback(context.detach, token)

        def request() -> None:
            hooks.notify_start(1, START)
            hooks.notify_end(1, END)

        request()
        reader.get_metrics_data()
        yield request


def _ns(fast: bool | None, number: int) -> float:
    with _request(fast) as call:
        return timeit.Timer(call).timeit(number) / number * 1e9


def _added(fast: bool, seconds: float, repeats: int) -> tuple[float, float, float]:
    """(median ns with metrics, median added ns, IQR of the added ns)."""
    with _request(fast) as call:
        number = calls_for(call, seconds)
    base: list[float] = []
    varied: list[float] = []
    for i in range(repeats):
        for which in (None, fast) if i % 2 == 0 else (fast, None):
            (base if which is None else varied).append(_ns(which, number))
    added = [v - b for b, v in zip(base, varied, strict=True)]
    return statistics.median(varied), statistics.median(added), iqr(added)


def _sdk_record(seconds: float, repeats: int) -> tuple[float, float]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    histogram = provider.get_meter("bench").create_histogram("http.server.request.duration", "s")
    span = TracerProvider().get_tracer("bench").start_span("GET /items/{id}")
    token = context.attach(trace.set_span_in_context(span))
    try:

        def record() -> None:
            histogram.record(0.000105727, RECORDED)

        number = calls_for(record, seconds)
        timings = [timeit.Timer(record).timeit(number) / number * 1e9 for _ in range(repeats)]
    finally:
        context.detach(token)
        provider.shutdown()
    return statistics.median(timings), iqr(timings)


def measure_metric_costs(seconds: float, repeats: int) -> list[MetricCost]:
    """The table: the SDK's record() alone, then what each metrics path adds per request."""
    sdk_ns, sdk_iqr = _sdk_record(seconds, repeats)
    rows = [MetricCost("SDK Histogram.record(), 5 attributes", sdk_ns, sdk_iqr, "timeit")]
    for fast, label in ((True, HOOKTEL_ROW), (False, "+ metrics, SDK record()")):
        _, added, iqr = _added(fast, seconds, repeats)
        rows.append(MetricCost(label, added, iqr, f"hooks with metrics - {ONLY_SPANS}"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="per timing")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    for row in measure_metric_costs(args.seconds, args.repeats):
        print(f"{row.path:42} {row.ns:8.0f} ns  IQR {row.iqr_ns:5.0f}  ({row.how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
