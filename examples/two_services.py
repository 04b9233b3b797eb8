"""Demo: one trace across two real services on 127.0.0.1, each in its own process.

`python examples/two_services.py` starts service A and service B, two Starlette
apps under uvicorn in their own processes, each with its own `service.name` and
no telemetry code in its handlers beyond the child spans it wants.
`HttpInstrumentation().instrument()` is all the setup either has. A client
sends two requests to A; A calls B with the propagated `traceparent`. Each
service writes its finished spans as JSON lines; once both have stopped, the
demo prints each trace as a tree first, then every span, service by service.

Each service also logs one line per request through `logging`, stamped with the
request's trace and span ids by `LoggingInstrumentation`, and service A reports its
runtime metrics (`RuntimeMetrics`: memory, CPU, threads, descriptors, the garbage
collector, its event loop's delay) as it shuts down; the demo prints both after the
trace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import demo_metrics
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

SERVICES = {"service-a": "/items/{item_id}", "service-b": "/answers/{question}"}
LOG_PREFIX, RUNTIME_PREFIX = "#log ", "#runtime "
LOG_FORMAT = (
    LOG_PREFIX + "%(otelServiceName)s trace=%(otelTraceID)s span=%(otelSpanID)s %(message)s"
)
log = logging.getLogger("demo")


class JsonLines(SpanExporter):
    """One JSON line per finished span, on stdout (or into a list, for the client)."""

    def __init__(self, into: list[dict[str, Any]] | None = None) -> None:
        self.into = into

    def export(self, spans: Any) -> SpanExportResult:
        for span in spans:
            record = as_dict(span)
            if self.into is not None:
                self.into.append(record)
            else:
                print(json.dumps(record), flush=True)
        return SpanExportResult.SUCCESS


def as_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx, parent = span.context, span.parent
    assert ctx is not None
    return {
        "service": span.resource.attributes["service.name"],
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "kind": span.kind.name,
        "name": span.name,
        "start": span.start_time,
        "attributes": {
            k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()
        },
    }


def provider_for(service: str, into: list[dict[str, Any]] | None = None) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(into)))
    return provider


def call(tracer: trace.Tracer, url: str) -> bytes:
    """GET `url` inside a CLIENT span, with the W3C trace context propagated."""
    with tracer.start_as_current_span(f"GET {url}", kind=trace.SpanKind.CLIENT):
        headers: dict[str, str] = {"accept": "application/json"}
        propagate.inject(headers)
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())


# ---------------------------------------------------------------- the services


def serve(service: str, b_url: str) -> None:
    """Run one service: `service-a` answers /items/{item_id} by asking service B."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from hooktel.otel import HttpInstrumentation, LoggingInstrumentation

    provider = provider_for(service)
    tracer = provider.get_tracer("demo")
    HttpInstrumentation().instrument(
        tracer_provider=provider,
        meter_provider=demo_metrics.meter_provider,
        capture_request_headers=["accept"],
    )
    LoggingInstrumentation().instrument(tracer_provider=provider, inject_trace_context=True)
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO, stream=sys.stdout)

    def item(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread
        log.info("item %s: asking service B", request.path_params["item_id"])
        with tracer.start_as_current_span("A: ask service B"):
            answer = json.loads(call(tracer, f"{b_url}/answers/everything"))
        return JSONResponse({"item": request.path_params["item_id"], "from_b": answer})

    def answer(request: Request) -> JSONResponse:
        log.info("answering %r", request.path_params["question"])
        with tracer.start_as_current_span("B: look up the answer"):
            return JSONResponse({"question": request.path_params["question"], "answer": 42})

    handler = item if service == "service-a" else answer
    app = Starlette(routes=[Route(SERVICES[service], handler)], lifespan=reporting(service))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn serves
    print(f"listening {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def reporting(service: str) -> Any:
    """The lifespan: service A's runtime metrics from its start (instrumented in its
    running loop, so that loop's delay is measured whichever loop uvicorn picked); as
    the service shuts down, its durations, then those runtime metrics."""
    from hooktel.otel import RuntimeMetrics

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if service == "service-a":
            RuntimeMetrics().instrument(meter_provider=demo_metrics.meter_provider)
        async with demo_metrics.reporting(service)(app):
            yield
        data = demo_metrics.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                if scope.scope.name != "hooktel.otel.runtime":
                    continue
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        line = [metric.name, point.value, metric.unit, attributes]
                        print(RUNTIME_PREFIX + json.dumps([service, *line]), flush=True)

    return lifespan


# ---------------------------------------------------------------- the client and the output


def start(service: str, b_url: str = "") -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, __file__, service, b_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the service says its port once it can take requests
    if not first.startswith("listening "):
        process.kill()
        raise SystemExit(f"{service} did not start: {first!r}")
    return process, f"http://127.0.0.1:{first.split()[1]}"


LOG_LINES: list[str] = []
RUNTIME_LINES: list[list[Any]] = []


def stop(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Stop a service (uvicorn shuts down on SIGTERM) and read the spans it wrote (and
    keep its log lines and runtime metrics)."""
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    demo_metrics.collect(out)
    LOG_LINES.extend(
        line[len(LOG_PREFIX) :] for line in out.splitlines() if line.startswith(LOG_PREFIX)
    )
    RUNTIME_LINES.extend(
        json.loads(line[len(RUNTIME_PREFIX) :])
        for line in out.splitlines()
        if line.startswith(RUNTIME_PREFIX)
    )
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    client_spans: list[dict[str, Any]] = []
    client = provider_for("client", into=client_spans).get_tracer("demo")
    b, b_url = start("service-b")
    a, a_url = start("service-a", b_url)
    try:
        replies = [call(client, f"{a_url}/items/{item}") for item in (1, 2)]
    finally:
        spans = client_spans + stop(a) + stop(b)
    print_trees(spans)
    demo_metrics.print_durations()
    print()
    for service in ("client", *SERVICES):
        print(f"## spans of service.name={service}")
        for span in (s for s in spans if s["service"] == service):
            parent = span["parent_id"] or "-"
            print(
                f"trace={span['trace_id']} span={span['span_id']} parent={parent:16} "
                f"{span['kind']:8} {span['name']!r} {json.dumps(span['attributes'])}"
            )
    print()
    print("## log lines, each stamped with its request's trace and SERVER span")
    for line in LOG_LINES:
        print(f"#   {line}")
    print("## runtime metrics of service-a, as it shut down")
    for service, name, value, unit, attributes in RUNTIME_LINES:
        labels = " ".join(f"{key}={attributes[key]}" for key in sorted(attributes))
        print(f"#   {service} {name} {value:g} {unit} {labels}".rstrip())
    print()
    for reply in replies:
        print(f"## client got {reply.decode()}")


def print_trees(spans: list[dict[str, Any]]) -> None:
    """Each trace as a tree: the client, service A's server span, ..., service B's."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)

    def show(span: dict[str, Any], depth: int) -> None:
        print(f"#   {'  ' * depth}{span['service']:10} {span['kind']:8} {span['name']}")
        for child in sorted(children.get(span["span_id"], []), key=lambda s: s["start"]):
            show(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda s: s["start"]):
        print(f"# trace {root['trace_id']}")
        show(root, 0)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        serve(sys.argv[1], sys.argv[2])
    else:
        main()
