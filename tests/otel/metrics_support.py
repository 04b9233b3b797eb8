"""What the metrics tests share: a traced and metered app in a thread, and collected data as dicts.

    with metered(meter_provider=provider) as served:      # HttpInstrumentation, uvicorn thread
        served.get("/items/1")
        served.wait_for(1)
        data = points(reader.get_metrics_data())

`metered` is `tests.otel.inprocess.traced` plus `meter_provider=` (and any
other option) with the Starlette app below served by uvicorn in a thread. The
`Finished` instrument, attached last, counts the requests whose every hook has
run (metrics recorded, span ended): `wait_for(n)` waits for it. `points`
flattens `MetricsData` to plain dicts keyed by (scope, metric name), without
the timestamps, which `timestamps` returns apart: two recordings of the same
requests differ there only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import hooktel
from hooktel.otel import HttpInstrumentation
from tests.otel.inprocess import FAST_PATH_ENV, traced, uvicorn_thread, wait_until
from tests.otel.support import fresh_connections

SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00"


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def status(request: Request) -> Response:
    return Response(b"status", status_code=int(request.path_params["code"]))


async def boom(request: Request) -> Response:
    raise RuntimeError("kaput")


async def upload(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


async def anything(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.method)


RELEASE = threading.Event()
"""`/wait` answers once this is set (or after 10 s)."""


async def wait(request: Request) -> PlainTextResponse:
    deadline = time.monotonic() + 10
    while not RELEASE.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return PlainTextResponse("released")


app = Starlette(
    routes=[
        Route("/items/{item_id}", item),
        Route("/status/{code:int}", status),
        Route("/boom", boom),
        Route("/upload", upload, methods=["POST"]),
        Route("/anything", anything, methods=["GET", "PURGE"]),
        Route("/wait", wait),
    ]
)


class Finished:
    """A hooktel instrument attached last: it counts requests whose every hook has run."""

    kind = "http"
    name = "finished"
    version = "1"

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def on_operation_end(self, op_id: int, attrs: hooktel.Attributes) -> None:
        with self._lock:
            self.count += 1

    on_operation_error = on_operation_end


@dataclass
class Served:
    port: int
    exporter: InMemorySpanExporter
    client: httpx.Client
    finished: Finished

    def request(self, method: str, target: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, f"http://127.0.0.1:{self.port}{target}", **kwargs)

    def get(self, target: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", target, **kwargs)

    def wait_for(self, count: int) -> None:
        """Wait until `count` requests were recorded (and their spans ended)."""
        wait_until(lambda: self.finished.count >= count, f"{count} finished requests")


@contextlib.contextmanager
def instrumented(fast_path: str = "1", **options: Any) -> Iterator[None]:
    """`HttpInstrumentation().instrument(**options)` for a block, with no tracer provider."""
    previous = os.environ.get(FAST_PATH_ENV)
    os.environ[FAST_PATH_ENV] = fast_path
    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()  # a singleton: whatever instrumented it before lets go
    instrumentation.instrument(**options)
    try:
        yield
    finally:
        instrumentation.uninstrument()
        if previous is None:
            os.environ.pop(FAST_PATH_ENV, None)
        else:
            os.environ[FAST_PATH_ENV] = previous


@contextlib.contextmanager
def metered(
    fast_path: str = "1", tracing: bool = True, http: str = "auto", **options: Any
) -> Iterator[Served]:
    """`HttpInstrumentation` with `options` (say `meter_provider=`), the app under uvicorn.

    With `tracing`, spans go to an in-memory exporter (`traced`); without, no
    tracer provider is given or set, and the exporter stays empty.
    """
    finished = Finished()
    with contextlib.ExitStack() as stack:
        if tracing:
            _, exporter = stack.enter_context(traced(fast_path, **options))
        else:
            stack.enter_context(instrumented(fast_path, **options))
            exporter = InMemorySpanExporter()
        stack.enter_context(hooktel.attach(finished))
        port = stack.enter_context(uvicorn_thread(app, http=http))
        # A new connection per request: uvicorn closes one after an exception.
        client = stack.enter_context(fresh_connections())
        yield Served(port, exporter, client, finished)


# A mixed workload: routes, statuses, an exception, an unknown method, sampled,
# unsampled and parentless traces, a body; durations as they come.
WORKLOAD: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("GET", "/items/1", {}),
    ("GET", "/items/2", {"headers": {"traceparent": SAMPLED_PARENT}}),
    ("GET", "/items/3", {"headers": {"traceparent": UNSAMPLED_PARENT}}),
    ("GET", "/status/404", {}),
    ("GET", "/status/503", {"headers": {"traceparent": SAMPLED_PARENT}}),
    ("GET", "/boom", {}),
    ("POST", "/upload", {"content": b"x" * 2000}),
    ("PURGE", "/anything", {}),
    ("GET", "/nowhere", {}),
    ("GET", "/items/4", {"headers": {"traceparent": UNSAMPLED_PARENT}}),
)


def run_workload(served: Served, reverse: bool = False) -> int:
    """Send the workload (in reverse), wait until all of it is recorded; how many requests."""
    before = served.finished.count
    for method, target, kwargs in reversed(WORKLOAD) if reverse else WORKLOAD:
        served.request(method, target, **kwargs)
    sent = len(WORKLOAD)
    served.wait_for(before + sent)
    return sent


# ----------------------------------------------------------------- collected data


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in sorted(dict(value).items())}
    return value


def _point(point: Any) -> dict[str, Any]:
    found = {
        name: _plain(getattr(point, name))
        for name in (
            "attributes",
            "count",
            "sum",
            "bucket_counts",
            "explicit_bounds",
            "min",
            "max",
            "value",
            "scale",
            "zero_count",
        )
        if hasattr(point, name)
    }
    found["exemplars"] = [
        {
            "filtered_attributes": _plain(e.filtered_attributes),
            "value": e.value,
            "span_id": e.span_id,
            "trace_id": e.trace_id,
        }
        for e in point.exemplars
    ]
    return found


def _metrics(data: MetricsData | None) -> Iterator[tuple[Any, Any, Any]]:
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                yield resource, scope, metric


def points(data: MetricsData | None) -> dict[tuple[str, str], dict[str, Any]]:
    """Every metric: its identity, kind, temporality and data points (sorted), no timestamps."""
    found = {}
    for resource, scope, metric in _metrics(data):
        found[(scope.scope.name, metric.name)] = {
            "resource": _plain(resource.resource.attributes),
            "scope": (scope.scope.name, scope.scope.version, scope.schema_url),
            "unit": metric.unit,
            "description": metric.description,
            "kind": type(metric.data).__name__,
            "temporality": getattr(metric.data, "aggregation_temporality", None),
            "monotonic": getattr(metric.data, "is_monotonic", None),
            "points": sorted(
                (_point(p) for p in metric.data.data_points), key=lambda p: repr(p["attributes"])
            ),
        }
    return found


def timestamps(data: MetricsData | None) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """(start, time, exemplar times) per (scope, metric, attributes)."""
    found = {}
    for _, scope, metric in _metrics(data):
        for p in metric.data.data_points:
            key = (scope.scope.name, metric.name, repr(_plain(p.attributes)))
            exemplar_times = tuple(e.time_unix_nano for e in p.exemplars)
            found[key] = (p.start_time_unix_nano, p.time_unix_nano, exemplar_times)
    return found


def histogram_points(data: MetricsData | None, name: str) -> list[dict[str, Any]]:
    found = [m for (_, metric), m in points(data).items() if metric == name]
    return found[0]["points"] if found else []
