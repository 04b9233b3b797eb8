"""Ten services on 127.0.0.1, each calling the next with the propagated header.

Services alternate between `ThreadingHTTPServer` and a Starlette app under
uvicorn (sync endpoint, so the handler runs in Starlette's thread pool). All
ten SERVER spans share one trace, and each is the child of the previous
service's CLIENT span, which is itself the child of that service's SERVER span.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.otel.inprocess import httpserver_thread, traced, uvicorn_thread, wait_until

SERVICES = 10
ports: list[int] = []
tracers: list[trace.Tracer] = []


def call_next(hop: int) -> str:
    """Service `hop`'s work: call service `hop + 1` under a CLIENT span, or answer."""
    if hop + 1 == SERVICES:
        return f"end at {hop}"
    url = f"http://127.0.0.1:{ports[hop + 1]}/hop/{hop + 1}"
    with tracers[0].start_as_current_span(f"call {hop + 1}", kind=SpanKind.CLIENT):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return str(r.read().decode())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = call_next(int(self.path.rsplit("/", 1)[1])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def hop_endpoint(request: Request) -> PlainTextResponse:
    return PlainTextResponse(call_next(int(request.path_params["n"])))


app = Starlette(routes=[Route("/hop/{n:int}", hop_endpoint)])


@pytest.fixture(params=["1", "0"], ids=["fast-path", "api-path"])
def chain(request: pytest.FixtureRequest) -> Iterator[InMemorySpanExporter]:
    with traced(request.param) as (provider, exporter), contextlib.ExitStack() as stack:
        tracers[:] = [provider.get_tracer("tests.chain")]
        ports[:] = [
            stack.enter_context(httpserver_thread(Handler) if i % 2 else uvicorn_thread(app))
            for i in range(SERVICES)
        ]
        yield exporter


def test_ten_services_share_one_trace(chain: InMemorySpanExporter) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/hop/0", timeout=60) as response:
        assert response.read() == f"end at {SERVICES - 1}".encode()

    def spans_of(kind: SpanKind) -> list[ReadableSpan]:
        return [s for s in chain.get_finished_spans() if s.kind is kind]

    wait_until(lambda: len(spans_of(SpanKind.SERVER)) == SERVICES, "ten server spans")
    servers = sorted(spans_of(SpanKind.SERVER), key=lambda s: int(s.attributes["url.path"][5:]))
    clients = {int(s.name.split()[1]): s for s in spans_of(SpanKind.CLIENT)}
    assert len({s.context.trace_id for s in chain.get_finished_spans()}) == 1
    assert servers[0].parent is None  # the first service had no caller
    for hop in range(1, SERVICES):
        client = clients[hop]
        assert servers[hop].parent is not None
        assert servers[hop].parent.span_id == client.context.span_id, f"hop {hop}"
        assert client.parent is not None
        assert client.parent.span_id == servers[hop - 1].context.span_id, f"hop {hop}"
