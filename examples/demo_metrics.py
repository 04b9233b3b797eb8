"""The demo's metrics: recorded in each service, printed by the client per service and route.

Each service passes `meter_provider` to `HttpInstrumentation().instrument()`
and, as uvicorn shuts it down, writes its `http.server.request.duration`
points as `#metric` lines on stdout (`reporting`, its app's lifespan). The
client keeps those lines when it stops the service (`collect`) and, after the
trace, prints one line per service, method, route and status: the count, mean
and max in milliseconds, and the non-empty buckets (`print_durations`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

PREFIX = "#metric "
reader = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[reader])
_collected: list[dict[str, Any]] = []


def reporting(service: str) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that reports the service's durations when it shuts down."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        report(service)

    return lifespan


def report(service: str) -> None:
    """In a service: its duration points, one `#metric` JSON line each."""
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "http.server.request.duration":
                    continue
                for point in metric.data.data_points:
                    record = {
                        "service": service,
                        "attributes": dict(point.attributes or {}),
                        "count": point.count,
                        "sum": point.sum,
                        "max": point.max,
                        "bounds": list(point.explicit_bounds),
                        "buckets": list(point.bucket_counts),
                    }
                    print(PREFIX + json.dumps(record), flush=True)


def collect(output: str) -> None:
    """In the client: keep the `#metric` lines of a service's output."""
    _collected.extend(
        json.loads(line[len(PREFIX) :]) for line in output.splitlines() if line.startswith(PREFIX)
    )


def print_durations() -> None:
    print("# metrics: http.server.request.duration per route, in ms")
    header = f"{'service':10} {'route':24} {'status':>6} {'count':>5} {'mean':>7} {'max':>7}"
    print(f"#   {header}  buckets")
    for point in _collected:
        print(_line(point))


def _line(point: dict[str, Any]) -> str:
    attributes = point["attributes"]
    route = f"{attributes['http.request.method']} {attributes.get('http.route', '')}".strip()
    status = attributes.get("http.response.status_code", "-")
    buckets = "  ".join(
        f"<={bound * 1000:g}ms: {count}"
        for bound, count in zip([*point["bounds"], float("inf")], point["buckets"], strict=True)
        if count
    )
    mean_ms, max_ms = point["sum"] / point["count"] * 1000, point["max"] * 1000
    return (
        f"#   {point['service']:10} {route:24} {status:>6} {point['count']:>5}"
        f" {mean_ms:>7.2f} {max_ms:>7.2f}  {buckets}"
    )
