"""What the metrics record, under real servers: the attributes, the values, when, and what not.

- `http.server.request.duration` under uvicorn (h11 and httptools) and
  `http.server`: one point per method, scheme, protocol version, status, route
  and error type (5xx and exceptions), nothing of high cardinality; its count and
  sum are those of the server spans' durations; the semantic conventions'
  buckets and unit.
- Metrics with tracing off (a meter provider, no tracer provider).
- Nothing recorded and nothing attached without a meter provider (none set, a
  no-op one), the global `MeterProvider` when none is given (in a subprocess:
  the global provider can be set once per process).
- The opt-in instruments: off by default; on by option or environment
  variable, with their values; unknown names refused.
- Excluded URLs are not recorded.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import hooktel
from hooktel.otel.metrics.instrument import (
    ACTIVE_REQUESTS,
    DURATION,
    DURATION_BUCKETS,
    ENV_OPT_IN,
    REQUEST_BODY_SIZE,
    RESPONSE_BODY_SIZE,
)
from tests.otel.inprocess import httpserver_thread, server_spans, wait_until
from tests.otel.metrics_support import (
    RELEASE,
    SAMPLED_PARENT,
    Finished,
    histogram_points,
    instrumented,
    metered,
    points,
)
from tests.support.servers import ROOT

SCOPE = "hooktel.otel"
LOW_CARDINALITY = {
    "http.request.method",
    "url.scheme",
    "network.protocol.version",
    "http.response.status_code",
    "http.route",
    "error.type",
}


_providers: dict[int, MeterProvider] = {}


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    _providers[id(reader)] = provider
    yield reader
    del _providers[id(reader)]
    provider.shutdown()


def _provider(reader: InMemoryMetricReader) -> MeterProvider:
    return _providers[id(reader)]


def _by_attributes(reader: InMemoryMetricReader, name: str = DURATION) -> dict[str, dict]:
    found = histogram_points(reader.get_metrics_data(), name)
    return {str(sorted(p["attributes"].items())): p for p in found}


def _attrs(method: str, status: int, route: str | None = None, error: str | None = None) -> str:
    """The key `_by_attributes` files a point under."""
    given = {
        "http.request.method": method,
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": status,
        "http.route": route,
        "error.type": error,
    }
    return str(sorted((k, v) for k, v in given.items() if v is not None))


SDK_DEFAULT_BUCKETS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)


def _expected_buckets() -> tuple[float, ...]:
    """The conventions' buckets, where the SDK takes bucket advice (1.28 does not)."""
    meter = MeterProvider(shutdown_on_exit=False).get_meter("probe")
    parameters = inspect.signature(meter.create_histogram).parameters
    advice = "explicit_bucket_boundaries_advisory" in parameters
    return DURATION_BUCKETS if advice else SDK_DEFAULT_BUCKETS


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_duration_per_route_status_and_error_under_uvicorn(
    reader: InMemoryMetricReader, http: str
) -> None:
    with metered(meter_provider=_provider(reader), http=http) as served:
        for target in ("/items/1", "/items/2", "/status/404", "/status/503", "/boom", "/nowhere"):
            served.get(target, headers={"traceparent": SAMPLED_PARENT, "user-agent": "probe/1"})
        served.request("PURGE", "/anything")
        served.wait_for(7)
        spans = server_spans(served.exporter)
        found = _by_attributes(reader)
        metric = points(reader.get_metrics_data())[(SCOPE, DURATION)]

    assert metric["unit"] == "s"
    assert metric["kind"] == "Histogram"
    expected = {
        _attrs("GET", 200, "/items/{item_id}"): 2,
        _attrs("GET", 404, "/status/{code:int}"): 1,
        _attrs("GET", 503, "/status/{code:int}", error="503"): 1,
        _attrs("GET", 500, "/boom", error="RuntimeError"): 1,
        _attrs("GET", 404): 1,  # no route matched
        _attrs("_OTHER", 200, "/anything"): 1,
    }
    assert {key: p["count"] for key, p in found.items()} == expected
    for point in found.values():
        assert set(point["attributes"]) <= LOW_CARDINALITY
        assert point["explicit_bounds"] == list(_expected_buckets())
    # The values are the server spans' durations, request by request.
    durations = sorted((s.end_time - s.start_time) / 1e9 for s in spans)
    assert len(durations) == 7
    assert sum(p["sum"] for p in found.values()) == pytest.approx(sum(durations), rel=1e-12)
    assert min(p["min"] for p in found.values()) == durations[0]
    assert max(p["max"] for p in found.values()) == durations[-1]


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200 if self.path == "/hello" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_duration_under_http_server_with_tracing_off(reader: InMemoryMetricReader) -> None:
    """No tracer provider given or set: the metrics are recorded all the same."""
    finished = Finished()
    with (
        instrumented(meter_provider=_provider(reader)),
        hooktel.attach(finished),
        httpserver_thread(_Hello) as port,
        httpx.Client() as client,
    ):
        assert client.get(f"http://127.0.0.1:{port}/hello").status_code == 200
        assert client.get(f"http://127.0.0.1:{port}/oops").status_code == 500
        wait_until(lambda: finished.count >= 2, "2 requests recorded")
        found = _by_attributes(reader)
    assert {key: p["count"] for key, p in found.items()} == {
        _attrs("GET", 200): 1,
        _attrs("GET", 500, error="500"): 1,
    }
    assert all(not p["exemplars"] for p in found.values())  # no span: no exemplar


def test_metrics_with_tracing_off_under_uvicorn(reader: InMemoryMetricReader) -> None:
    with metered(tracing=False, meter_provider=_provider(reader)) as served:
        served.get("/items/1", headers={"traceparent": SAMPLED_PARENT})
        served.wait_for(1)
        names = [i.name for i in hooktel.instruments()]  # other modules' may be there too
        assert names.index("hooktel.otel.metrics") < names.index("hooktel.otel")
        (point,) = histogram_points(reader.get_metrics_data(), DURATION)
    assert point["count"] == 1
    # No server span: the current span is what the API's no-op tracer makes of the request's
    # context (the caller's span, sampled, in newer APIs; none in 1.28): the trace-based
    # filter attaches an exemplar exactly when that span is sampled, as the SDK would.
    parent = propagate.extract({"traceparent": SAMPLED_PARENT})
    stand_in = trace.NoOpTracer().start_span("probe", context=parent).get_span_context()
    if stand_in.is_valid and stand_in.trace_flags.sampled:
        (exemplar,) = point["exemplars"]
        assert (exemplar["trace_id"], exemplar["span_id"]) == (
            stand_in.trace_id,
            stand_in.span_id,
        )
    else:
        assert point["exemplars"] == []


@pytest.mark.parametrize("provider", [None, NoOpMeterProvider()], ids=["none-set", "no-op"])
def test_nothing_recorded_nor_attached_without_a_meter_provider(
    provider: NoOpMeterProvider | None,
) -> None:
    options = {} if provider is None else {"meter_provider": provider}
    with metered(**options) as served:
        names = [i.name for i in hooktel.instruments()]  # other modules' may be there too
        assert "hooktel.otel" in names
        assert "hooktel.otel.metrics" not in names
        served.get("/items/1")
        served.wait_for(1)


GLOBAL_PROVIDER = """
import threading, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from hooktel.otel import HttpInstrumentation

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
HttpInstrumentation().instrument()

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Hello)
threading.Thread(target=server.serve_forever).start()
urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/")
server.shutdown()  # returns once the request was handled, hooks included
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            for point in metric.data.data_points:
                print(metric.name, point.count, dict(point.attributes)["http.response.status_code"])
"""


def test_the_global_meter_provider_when_none_is_given() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == [DURATION, "1", "204"]


def test_opt_in_instruments_are_off_by_default(reader: InMemoryMetricReader) -> None:
    with metered(meter_provider=_provider(reader)) as served:
        served.request("POST", "/upload", content=b"x" * 100)
        served.wait_for(1)
        names = {name for _, name in points(reader.get_metrics_data())}
    assert names == {DURATION}


@pytest.mark.parametrize("how", ["option", "environment"])
def test_opt_in_instruments_when_asked(
    reader: InMemoryMetricReader, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [ACTIVE_REQUESTS, REQUEST_BODY_SIZE, RESPONSE_BODY_SIZE]
    options: dict[str, object] = {"meter_provider": _provider(reader)}
    if how == "option":
        options["opt_in_metrics"] = names
    else:
        monkeypatch.setenv(ENV_OPT_IN, ",".join(names))
    RELEASE.clear()
    with metered(**options) as served:
        served.request("POST", "/upload", content=b"x" * 2000)
        served.wait_for(1)  # its end hook may run after the client has the response
        waiting = threading.Thread(target=served.get, args=("/wait",))
        waiting.start()

        def active() -> list[dict]:
            return histogram_points(reader.get_metrics_data(), ACTIVE_REQUESTS)

        in_flight = wait_until(
            lambda: [p for p in active() if p["value"] == 1], "the waiting request to count"
        )
        RELEASE.set()
        waiting.join(10)
        served.wait_for(2)
        data = reader.get_metrics_data()
    assert in_flight[0]["attributes"] == {"http.request.method": "GET", "url.scheme": "http"}
    assert {str(p["attributes"]): p["value"] for p in histogram_points(data, ACTIVE_REQUESTS)} == {
        str({"http.request.method": "GET", "url.scheme": "http"}): 0,
        str({"http.request.method": "POST", "url.scheme": "http"}): 0,
    }
    (request_size,) = histogram_points(data, REQUEST_BODY_SIZE)  # GET /wait sent no body
    assert (request_size["count"], request_size["sum"]) == (1, 2000)
    assert request_size["attributes"]["http.route"] == "/upload"
    responses = histogram_points(data, RESPONSE_BODY_SIZE)
    sizes = {p["attributes"]["http.route"]: p["sum"] for p in responses}
    assert sizes == {"/upload": len("2000"), "/wait": len("released")}
    units = {name: m["unit"] for (_, name), m in points(data).items()}
    assert units == {
        DURATION: "s",
        ACTIVE_REQUESTS: "{request}",
        REQUEST_BODY_SIZE: "By",
        RESPONSE_BODY_SIZE: "By",
    }


def test_unknown_opt_in_names_are_refused(reader: InMemoryMetricReader) -> None:
    from hooktel.otel import HttpInstrumentation

    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()
    with pytest.raises(ValueError, match=r"http\.server\.requests"):
        instrumentation.instrument(
            meter_provider=_provider(reader), opt_in_metrics=["http.server.requests"]
        )
    instrumentation.uninstrument()


def test_excluded_urls_are_not_recorded(reader: InMemoryMetricReader) -> None:
    with metered(meter_provider=_provider(reader), excluded_urls="/status/") as served:
        served.get("/status/200")
        served.get("/items/1")
        served.wait_for(2)
        found = histogram_points(reader.get_metrics_data(), DURATION)
    assert [p["attributes"].get("http.route") for p in found] == ["/items/{item_id}"]


def test_a_failing_handover_is_logged_and_the_collection_goes_on(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hooktel.otel._sdk import metrics as seam

    def broken(match: object, series: object) -> None:
        raise RuntimeError("the SDK changed under us")

    with metered(meter_provider=_provider(reader), opt_in_metrics=[ACTIVE_REQUESTS]) as served:
        served.get("/items/1")
        served.wait_for(1)
        monkeypatch.setattr(seam, "_feed", broken)
        names = {name for _, name in points(reader.get_metrics_data())}
    assert names == {ACTIVE_REQUESTS}  # what the SDK recorded itself still goes out
    assert "could not be handed to the OpenTelemetry SDK" in caplog.text


def test_concurrent_requests_are_each_counted_once(reader: InMemoryMetricReader) -> None:
    """Many requests at once on a threading server, collected meanwhile: none lost or doubled."""
    requests, threads = 400, 8
    finished = Finished()
    counts: list[int] = []
    with (
        instrumented(meter_provider=_provider(reader)),
        hooktel.attach(finished),
        httpserver_thread(_Hello) as port,
    ):

        def send(n: int) -> None:
            with httpx.Client() as client:
                for _ in range(n):
                    assert client.get(f"http://127.0.0.1:{port}/hello").status_code == 200

        each = requests // threads
        workers = [threading.Thread(target=send, args=(each,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        while any(worker.is_alive() for worker in workers):  # collections during the load
            counts.extend(p["count"] for p in histogram_points(reader.get_metrics_data(), DURATION))
        for worker in workers:
            worker.join()
        wait_until(lambda: finished.count >= requests, f"{requests} requests recorded")
        (point,) = histogram_points(reader.get_metrics_data(), DURATION)
    assert point["count"] == sum(point["bucket_counts"]) == requests
    assert counts == sorted(counts)  # cumulative: never goes back
