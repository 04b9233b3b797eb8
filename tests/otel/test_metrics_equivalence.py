"""The same requests recorded both ways collect the same data: hooktel's path = the SDK's own.

Every request of a real uvicorn server is recorded twice: by hooktel's metrics
(`HttpInstrumentation().instrument(meter_provider=...)`, aggregated by
hooktel and handed to the SDK when it collects) and, into a second provider
configured the same way, by a reference instrument that calls the SDK's own
`Histogram.record()` for each request (the metrics instrument with
`HOOKTEL_OTEL_FAST_PATH=0`). Both are attached before the span instrument, so
both record while the request's server span is current. After each round the
two readers collect, and everything but the timestamps must be equal: the
metrics and their identity, temporality, data points, counts, sums, min/max,
bucket counts and exemplars (value, span and trace ids, filtered attributes).
The timestamps must be ordered as the SDK's are and close to the reference's.

Configurations: cumulative and delta temporality; a view that renames, one that
keeps two attributes, one that changes the buckets (and drops min/max), one
that drops the instrument, all of them at once; a cardinality limit that
overflows; the always-on and always-off exemplar filters; the opt-in
instruments; two readers (cumulative, and delta collected half as often);
and one configuration hooktel cannot aggregate exactly (an
exponential histogram view), where it records through the SDK instead.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)

import hooktel
from hooktel import __version__
from hooktel.otel.metrics import histograms as _histograms
from hooktel.otel.metrics.instrument import DURATION, OPT_IN, ServerMetrics
from tests.otel.inprocess import server_spans
from tests.otel.metrics_support import UNSAMPLED_PARENT, metered, points, run_workload, timestamps

SCOPE = ("hooktel.otel", __version__, "https://opentelemetry.io/schemas/1.26.0")
DELTA = {Histogram: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.DELTA}
ROUNDS = 3
EXPONENTIAL = ExponentialBucketHistogramAggregation()
KEPT = {"http.request.method", "http.route"}

CONFIGS: dict[str, dict[str, Any]] = {
    "cumulative": {},
    "delta": {"temporality": DELTA},
    "view-rename": {"views": [View(instrument_name=DURATION, name="http.server.latency")]},
    "view-attributes": {"views": [View(instrument_name=DURATION, attribute_keys=KEPT)]},
    "view-buckets": {
        "views": [
            View(
                instrument_name=DURATION,
                aggregation=ExplicitBucketHistogramAggregation(
                    (0.0002, 0.0005, 0.001, 0.002, 0.005), record_min_max=False
                ),
            )
        ]
    },
    "view-drop": {"views": [View(instrument_name=DURATION, aggregation=DropAggregation())]},
    "views-together-delta": {
        "temporality": DELTA,
        "views": [
            View(instrument_name=DURATION, name="http.server.latency"),
            View(instrument_name=DURATION, name="by.route", attribute_keys={"http.route"}),
            View(
                instrument_name=DURATION,
                name="coarse",
                aggregation=ExplicitBucketHistogramAggregation((0.001, 0.1)),
            ),
            View(instrument_name=DURATION, name="dropped", aggregation=DropAggregation()),
        ],
    },
    # Twice per collection, the second time in reverse: the overflow point gets several
    # attribute sets' measurements interleaved, its exemplar is the last one of them.
    "cardinality-overflow": {"cardinality_limit": 3, "there_and_back": True},
    "cardinality-overflow-delta": {
        "temporality": DELTA,
        "cardinality_limit": 4,
        "there_and_back": True,
    },
    "exemplars-always-on": {"exemplar_filter": AlwaysOnExemplarFilter},
    "exemplars-always-off": {"exemplar_filter": AlwaysOffExemplarFilter},
    "opt-in-instruments": {"opt_in": list(OPT_IN)},
    "two-readers-cumulative-and-delta": {"second_reader": True},
    "exponential-view (SDK path)": {
        "views": [View(instrument_name=DURATION, aggregation=EXPONENTIAL)],
        "aggregated": False,
    },
}


def _views(config: dict[str, Any]) -> list[View]:
    limit = config.get("cardinality_limit")
    if limit is None:
        return list(config.get("views", ()))
    if "aggregation_cardinality_limit" not in inspect.signature(View).parameters:
        pytest.skip("this SDK has no cardinality limits (1.28 has not)")
    return [View(instrument_name=DURATION, aggregation_cardinality_limit=limit)]


def _provider(config: dict[str, Any], stack: ExitStack) -> tuple[MeterProvider, list[Any]]:
    readers = [InMemoryMetricReader(preferred_temporality=config.get("temporality"))]
    if config.get("second_reader"):
        readers.append(InMemoryMetricReader(preferred_temporality=DELTA))
    exemplar_filter = config.get("exemplar_filter")
    provider = MeterProvider(
        metric_readers=readers,
        views=_views(config),
        exemplar_filter=exemplar_filter() if exemplar_filter else None,
        shutdown_on_exit=False,
    )
    stack.callback(provider.shutdown)
    return provider, readers


def _reference(provider: MeterProvider, opt_in: list[str]) -> ServerMetrics:
    """The metrics instrument on the SDK's `Histogram.record()` (HOOKTEL_OTEL_FAST_PATH=0)."""
    previous = os.environ.get("HOOKTEL_OTEL_FAST_PATH")
    os.environ["HOOKTEL_OTEL_FAST_PATH"] = "0"
    try:
        options = {"meter_provider": provider, "opt_in_metrics": opt_in}
        made = ServerMetrics.create(options, None, SCOPE)
    finally:
        if previous is None:
            del os.environ["HOOKTEL_OTEL_FAST_PATH"]
        else:
            os.environ["HOOKTEL_OTEL_FAST_PATH"] = previous
    assert made is not None
    return made


def _aggregated_by_hooktel(provider: MeterProvider) -> bool:
    duration = provider.get_meter(SCOPE[0], SCOPE[1], schema_url=SCOPE[2]).create_histogram(
        DURATION, "s", "Duration of HTTP server requests."
    )
    return _histograms._created.get(duration) is not None


def _check_timestamps(ours: dict[Any, Any], reference: dict[Any, Any]) -> None:
    assert ours.keys() == reference.keys()
    for key, (start, time, exemplar_times) in ours.items():
        ref_start, _, ref_exemplar_times = reference[key]
        assert start <= time, f"{key}: starts after it was collected"
        assert abs(start - ref_start) < 1e9, f"{key}: start {start} far from the SDK's {ref_start}"
        assert len(exemplar_times) == len(ref_exemplar_times)
        for when, ref_when in zip(exemplar_times, ref_exemplar_times, strict=True):
            # (the SDK takes a measurement's time before it creates its point: not >= start)
            assert when <= time, f"{key}: exemplar after its point was collected"
            assert abs(when - ref_when) < 1e9


def _without_random_picks(found: dict[Any, Any]) -> dict[Any, Any]:
    """The exemplars of sums reduced to how many there are.

    Both sides record `http.server.active_requests` through the SDK (hooktel does
    not aggregate counters); the SDK's reservoir for sums picks its exemplar at
    random, so two recordings of the same requests keep different ones.
    """
    for metric in found.values():
        if metric["kind"] == "Sum":
            for point in metric["points"]:
                point["exemplars"] = len(point["exemplars"])
    return found


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return CONFIGS[request.param]


@contextmanager
def recorded_both_ways(config: dict[str, Any]) -> Iterator[tuple[Any, Any, Any]]:
    """(served app, reference readers, hooktel readers): every request recorded both ways."""
    with ExitStack() as stack:
        reference_provider, reference_readers = _provider(config, stack)
        provider, readers = _provider(config, stack)
        opt_in = config.get("opt_in", [])
        reference = _reference(reference_provider, opt_in)
        # Attached before HttpInstrumentation's instruments: it records before the span ends.
        stack.enter_context(hooktel.attach(reference.instrument("reference", "1")))
        served = stack.enter_context(metered(meter_provider=provider, opt_in_metrics=opt_in))
        assert _aggregated_by_hooktel(provider) is config.get("aggregated", True)
        yield served, reference_readers, readers


@pytest.fixture
def both_ways(config: dict[str, Any]) -> Iterator[tuple[Any, Any, Any]]:
    with recorded_both_ways(config) as recorded:
        yield recorded


def same_data_each_round(both_ways: tuple[Any, Any, Any], config: dict[str, Any]) -> None:
    """Rounds of requests, after each of which both ways' readers collect the same data."""
    served, reference_readers, readers = both_ways
    for round_number in range(ROUNDS):
        run_workload(served)
        if config.get("there_and_back"):
            run_workload(served, reverse=True)
        # A second reader collects every other round only: each reader has its own streams.
        collecting = readers if round_number % 2 else readers[:1]
        for reference_reader, reader in zip(reference_readers, collecting, strict=False):
            expected_data = reference_reader.get_metrics_data()
            data = reader.get_metrics_data()
            expected = points(expected_data)
            assert _without_random_picks(points(data)) == _without_random_picks(expected)
            _check_timestamps(timestamps(data), timestamps(expected_data))
        if not config.get("views") and config.get("exemplar_filter") is not AlwaysOffExemplarFilter:
            durations = expected[(SCOPE[0], DURATION)]["points"]
            assert any(p["exemplars"] for p in durations), "the workload made no exemplar"


def test_the_same_data_as_the_sdk_recording_each_request(
    both_ways: tuple[Any, Any, Any], config: dict[str, Any]
) -> None:
    same_data_each_round(both_ways, config)


def test_exemplars_point_at_the_server_span_of_their_request() -> None:
    """The default (trace-based) filter: an exemplar per sampled request, with its span's ids."""
    with ExitStack() as stack:
        provider, (reader,) = _provider({}, stack)
        served = stack.enter_context(metered(meter_provider=provider))
        served.get("/items/1")
        served.get("/items/2", headers={"traceparent": UNSAMPLED_PARENT})
        served.wait_for(2)
        spans = {s.attributes["url.path"]: s for s in server_spans(served.exporter)}
        (point,) = points(reader.get_metrics_data())[(SCOPE[0], DURATION)]["points"]
    assert point["count"] == 2
    (exemplar,) = point["exemplars"]  # the unsampled request makes none
    sampled = spans["/items/1"].context
    assert (exemplar["trace_id"], exemplar["span_id"]) == (sampled.trace_id, sampled.span_id)
    assert exemplar["value"] == (spans["/items/1"].end_time - spans["/items/1"].start_time) / 1e9
