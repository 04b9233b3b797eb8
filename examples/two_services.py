"""Demo: one trace across two real services on 127.0.0.1.

A client calls service A (a Starlette app under uvicorn); A's handler starts a
child span and calls service B (a `ThreadingHTTPServer`) with the propagated
`traceparent`. Every span is printed by the SDK's console exporter, one line
each: trace id, span id, parent id, kind, name.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import uvicorn
from demo_metrics import meter_provider, print_durations
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hooktel.asgi import TelemetryMiddleware
from hooktel.otel import HttpInstrumentation

finished: list[ReadableSpan] = []


def one_line(span: ReadableSpan) -> str:
    finished.append(span)
    ctx, parent = span.context, span.parent
    return (
        f"trace={ctx.trace_id:032x} span={ctx.span_id:016x} "
        f"parent={(f'{parent.span_id:016x}' if parent else '-'):16} "
        f"{span.kind.name:8} {span.name!r} {json.dumps(dict(span.attributes or {}))}\n"
    )


provider = TracerProvider(resource=Resource.create({"service.name": "hooktel-demo"}))
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
tracer = provider.get_tracer("demo")
HttpInstrumentation().instrument(
    tracer_provider=provider, meter_provider=meter_provider, capture_request_headers=["accept"]
)


class ServiceB(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with tracer.start_as_current_span("B: look up the answer"):
            body = b'{"answer": 42}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def call(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    with tracer.start_as_current_span(f"GET {url}", kind=trace.SpanKind.CLIENT):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        for name, value in headers.items():
            request.add_header(name, value)
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())


service_b = ThreadingHTTPServer(("127.0.0.1", 0), ServiceB)
B_URL = f"http://127.0.0.1:{service_b.server_address[1]}/answer"


async def handler(request: Request) -> JSONResponse:
    with tracer.start_as_current_span("A: ask service B"):
        answer = json.loads(call(B_URL))  # blocking is fine for a demo
    return JSONResponse({"from_b": answer})


service_a = uvicorn.Server(
    uvicorn.Config(
        TelemetryMiddleware(Starlette(routes=[Route("/items/{item_id}", handler)])),
        host="127.0.0.1",
        port=0,
        log_level="warning",
    )
)


def main() -> None:
    threading.Thread(target=service_b.serve_forever, daemon=True).start()
    threading.Thread(target=service_a.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not service_a.started and time.monotonic() < deadline:
        time.sleep(0.01)
    port = service_a.servers[0].sockets[0].getsockname()[1]
    for item in (1, 2):
        print(f"# client: GET /items/{item} -> {call(f'http://127.0.0.1:{port}/items/{item}')!r}")
    service_a.should_exit = True
    service_b.shutdown()
    print_trees()
    print_durations()


def print_trees() -> None:
    """Each trace as a tree: a client, service A's server span, ..., service B's."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in finished:
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        print(f"#   {'  ' * depth}{span.kind.name:8} {span.name}")
        for child in sorted(
            children.get(span.context.span_id, []), key=lambda s: s.start_time or 0
        ):
            show(child, depth + 1)

    for root in children.get(None, []):
        print(f"# trace {root.context.trace_id:032x}")
        show(root, 0)


if __name__ == "__main__":
    main()
