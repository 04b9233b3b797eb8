"""The demo's metrics: where they are recorded, and the duration histogram printed per route.

`two_services.py` passes `meter_provider` to `HttpInstrumentation().instrument()`
and calls `print_durations()` after the trace: one line per method, route and
status, with the count, mean and max in milliseconds, and the non-empty
buckets of `http.server.request.duration`.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[reader])


def print_durations() -> None:
    """`http.server.request.duration` per method, route and status, one line each."""
    print("# metrics: http.server.request.duration per route, in ms")
    print(f"#   {'route':28} {'status':>6} {'count':>5} {'mean':>7} {'max':>7}  buckets (<=ms: n)")
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "http.server.request.duration":
                    for point in metric.data.data_points:
                        print(_line(point))


def _line(point: Any) -> str:
    attributes = point.attributes or {}
    route = f"{attributes['http.request.method']} {attributes.get('http.route', '')}".strip()
    status = attributes.get("http.response.status_code", "-")
    bounds = (*point.explicit_bounds, float("inf"))
    buckets = "  ".join(
        f"<={bound * 1000:g}: {count}"
        for bound, count in zip(bounds, point.bucket_counts, strict=True)
        if count
    )
    mean_ms, max_ms = point.sum / point.count * 1000, point.max * 1000
    return f"#   {route:28} {status:>6} {point.count:>5} {mean_ms:>7.2f} {max_ms:>7.2f}  {buckets}"
