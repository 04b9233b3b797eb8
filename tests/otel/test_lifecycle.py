"""Context between requests, instruments side by side, and `uninstrument()`, on real servers."""

from __future__ import annotations

import contextlib
import socket

import httpx

from tests.otel.apps.harness import CHILD_SPAN
from tests.otel.support import OtelServer, fresh_connections, new_tag

# Requests of every outcome, sent one after the other on one connection where
# the server keeps it (the same thread or task where it has one per connection).
SEQUENCE = [
    "/items/1",
    "/status/500",
    "/items/2",
    "/status/404",
    "/no/such/path",
    "/stream?n=2&interval=0&tail=0",
    "/health",
    "/items/3",
    "/boom",
    "/items/4",
    "/items/5",
]


def test_context_is_restored_between_requests(server: OtelServer) -> None:
    """No request's span is current when the next request starts, nor its handler's parent.

    The harness's `probe` instrument, which runs before the OpenTelemetry one,
    records any span that is current when a request starts.
    """
    tags = []
    with httpx.Client(timeout=10.0) as client:
        for target in SEQUENCE:
            tag = new_tag()
            tags.append(tag)
            if target != "/boom":
                assert server.get(target, client=client, tag=tag).status_code < 600
                continue
            # The server closes that connection (http.server without an answer).
            with fresh_connections() as one_shot, contextlib.suppress(httpx.RemoteProtocolError):
                server.get(target, client=one_shot, tag=tag)
    state = server.wait_idle()
    assert state.stale == []
    spans = [state.tagged(tag) for tag in tags]
    assert all(len(found) == 1 for found in spans), spans
    server_spans = [found[0] for found in spans]
    assert all(span.is_root for span in server_spans)
    assert len({span.trace_id for span in server_spans}) == len(SEQUENCE)
    children = [s for s in state.spans if s.name == CHILD_SPAN]
    assert len(children) == 6  # /items/1..5 and /health
    by_id = {span.span_id: span for span in server_spans}
    for child in children:
        assert child.parent_span_id in by_id, child
        assert child.trace_id == by_id[child.parent_span_id].trace_id
        assert child.start >= by_id[child.parent_span_id].start


def test_two_instruments_side_by_side(server: OtelServer) -> None:
    """HttpInstrumentation and a plain `hooktel.attach(...)` logging instrument.

    Both see the same requests; detaching either one leaves the other working.
    """
    server.reset(logger=True)
    assert server.state().instruments == ["probe", "hooktel.otel", "logger", "counter"]
    response = server.get("/items/1")
    assert "traceparent" in response.headers
    span = server.server_span(response)
    assert span.attributes["http.response.status_code"] == 200
    log = server.state().log
    assert [(e["event"], e.get("url.path")) for e in log] == [("start", "/items/1"), ("end", None)]
    assert log[1]["http.response.status_code"] == 200
    assert log[0]["op_id"] == log[1]["op_id"]

    server.configure(logger=False)  # detach the logger: spans go on
    response = server.get("/items/2")
    assert "traceparent" in response.headers
    assert server.server_span(response).attributes["url.path"] == "/items/2"
    assert server.state().log == []

    server.configure(logger=True, otel=False)  # the logger alone: no spans, still logged
    assert server.state().instruments == ["probe", "logger", "counter"]
    response = server.get("/status/500")
    assert response.status_code == 500
    assert "traceparent" not in response.headers
    state = server.wait_idle()
    assert state.server_spans() == []
    assert [(e["event"], e.get("http.response.status_code")) for e in state.log] == [
        ("start", None),
        ("end", 500),
    ]


def test_uninstrument_stops_spans(server: OtelServer) -> None:
    response = server.get("/items/1")
    assert len(server.server_spans(response)) == 1

    server.configure(otel=False)
    server.configure(otel=False)  # twice: nothing to do the second time
    assert "hooktel.otel" not in server.state().instruments
    for target in ("/items/2", "/status/500", "/stream?n=2&interval=0&tail=0"):
        response = server.get(target)
        assert "traceparent" not in response.headers
    response_child = server.get("/items/3").json()
    state = server.wait_idle()
    assert state.server_spans() == []
    assert response_child["parent_span_id"] == ""  # the handler's span is a root now

    server.configure(otel={})  # and instrument() again brings them back
    response = server.get("/items/4")
    assert "traceparent" in response.headers
    assert len(server.server_spans(response)) == 1


PIPELINED = ["/items/1", "/status/500", "/items/2", "/stream?n=2&interval=0&tail=0", "/items/3"]


def test_context_is_restored_between_pipelined_requests(server: OtelServer) -> None:
    """Requests sent all at once on one connection: none starts inside another's context.

    Servers that pipeline (uvicorn, http.server, gunicorn's gthread worker) may
    start the next request from inside the previous one's last send; some
    frameworks send from a child task holding a copy of the request's context
    (Django under ASGI, Starlette's streaming responses). A server that answers
    one request per connection (gunicorn's sync worker) answers the first only.
    """
    tags = [new_tag() for _ in PIPELINED]
    wire = b"".join(
        f"GET {target}{'&' if '?' in target else '?'}_t={tag} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n\r\n".encode()
        for target, tag in zip(PIPELINED, tags, strict=True)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10.0) as sock:
        sock.sendall(wire)
        received = b""
        while received.count(b"HTTP/1.1 ") < len(PIPELINED) and (data := sock.recv(65536)):
            received += data
    answered = received.count(b"HTTP/1.1 ")
    assert answered >= 1
    state = server.wait_idle()
    assert state.stale == []
    for tag in tags[:answered]:
        [span] = state.tagged(tag)
        assert span.is_root
