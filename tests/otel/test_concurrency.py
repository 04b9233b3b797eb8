"""Many requests at once through uvicorn: every span is its own request's, nothing leaks.

- 1,000 concurrent requests, each with its own `traceparent`: 1,000 SERVER spans,
  1,000 distinct span ids, each the child of its own request's parent and the
  parent of its own handler's child span, with its own request's attributes.
- Pipelined requests on one keep-alive connection, empty, small and over 64 KiB
  bodies (uvicorn starts the next request from inside the previous one's task,
  so its context is inherited: contrib #1783): each is a root span, and no
  handler runs inside another request's span. Two things guarantee it: the
  parent of a server span comes from the request alone (never the current
  context), and the ASGI hook point ends the operation, restoring the
  context, before the last send.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.otel.inprocess import server_spans, traced, uvicorn_thread, wait_until

REQUESTS = 1000
PIPELINED = 6
BODY = b"x" * (70 * 1024)


async def numbered(request: Request) -> PlainTextResponse:
    n = int(request.path_params["n"])
    await asyncio.sleep(0.002 * (n % 7))  # interleave the requests' handlers
    with request.app.state.tracer.start_as_current_span("handler", attributes={"request.n": n}):
        await asyncio.sleep(0)
    return PlainTextResponse(str(n))


async def upload(request: Request) -> PlainTextResponse:
    body = await request.body()
    tracer = request.app.state.tracer
    with tracer.start_as_current_span("handler", attributes={"body.size": len(body)}):
        pass
    return PlainTextResponse(str(len(body)))


app = Starlette(
    routes=[Route("/req/{n:int}", numbered), Route("/upload", upload, methods=["POST"])]
)


@pytest.fixture(scope="module", params=["1", "0"], ids=["fast-path", "api-path"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[int, InMemorySpanExporter]]:
    with traced(request.param) as (provider, exporter), uvicorn_thread(app) as port:
        app.state.tracer = provider.get_tracer("tests.concurrency")
        yield port, exporter


def _parent(n: int) -> tuple[int, int]:
    return 0x1000 + n, 0x2000 + n  # trace id, span id of request n's caller


async def _send_all(port: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return await asyncio.gather(
            *(
                client.get(
                    f"http://127.0.0.1:{port}/req/{n}",
                    headers={"traceparent": "00-{:032x}-{:016x}-01".format(*_parent(n))},
                )
                for n in range(REQUESTS)
            )
        )


def test_thousand_concurrent_requests_each_get_their_own_span(
    served: tuple[int, InMemorySpanExporter],
) -> None:
    port, exporter = served
    exporter.clear()
    responses = asyncio.run(_send_all(port))
    assert [r.text for r in responses] == [str(n) for n in range(REQUESTS)]

    spans = wait_until(
        lambda: len(server_spans(exporter)) >= REQUESTS and exporter.get_finished_spans(),
        "1,000 server spans",
    )
    servers = server_spans(exporter)
    assert len(servers) == REQUESTS
    assert len({s.context.span_id for s in servers}) == REQUESTS
    by_span_id = {s.context.span_id: s for s in servers}
    seen = set()
    for span in servers:
        n = int(span.attributes["url.path"].rsplit("/", 1)[1])
        seen.add(n)
        trace_id, parent_span_id = _parent(n)
        assert span.name == "GET /req/{n:int}"
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == parent_span_id
    assert seen == set(range(REQUESTS))
    children = [s for s in spans if s.name == "handler"]
    assert len(children) == REQUESTS
    for child in children:
        assert child.parent is not None
        owner = by_span_id[child.parent.span_id]  # a child of a server span...
        assert owner.attributes["url.path"] == f"/req/{child.attributes['request.n']}"  # ...its own


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    sock.settimeout(30)
    data, bodies = b"", []
    while len(bodies) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(rest) >= length:
                bodies.append(rest[:length])
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection early"
        data += chunk
    return bodies


def _upload(body: bytes) -> bytes:
    return (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body


@pytest.mark.parametrize("size", [0, 10, len(BODY)], ids=["empty", "small", "over-64KiB"])
def test_pipelined_requests_are_each_a_root_span(
    served: tuple[int, InMemorySpanExporter], size: int
) -> None:
    port, exporter = served
    exporter.clear()
    body = BODY[:size]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_upload(body) * PIPELINED)
        assert _read_responses(sock, PIPELINED) == [str(size).encode()] * PIPELINED

    wait_until(lambda: len(server_spans(exporter)) >= PIPELINED, "pipelined server spans")
    servers = server_spans(exporter)
    assert len(servers) == PIPELINED
    assert all(s.parent is None for s in servers), [s.parent for s in servers]
    assert len({s.context.trace_id for s in servers}) == PIPELINED
    server_ids = {s.context.span_id for s in servers}
    children = [s for s in exporter.get_finished_spans() if s.name == "handler"]
    assert len(children) == PIPELINED
    assert all(c.parent is not None and c.parent.span_id in server_ids for c in children)
    assert len({c.parent.span_id for c in children if c.parent}) == PIPELINED
