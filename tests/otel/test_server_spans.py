"""The SERVER span of each request, from real servers: name, kind, attributes, parent, status.

Every test runs against every server/app pair (`support.KINDS`) and both span
paths; see `conftest.py`.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.otel.apps.harness import BOOM_MESSAGE, CHILD_SPAN, chunk
from tests.otel.support import (
    PARENT_SPAN_ID,
    TRACE_ID,
    TRACEPARENT,
    OtelServer,
    Span,
    fresh_connections,
    new_tag,
)

HOOK_ONLY_PREFIXES = ("operation.", "trace.parent.")


def expected_name(server: OtelServer, method: str, route: str | None) -> str:
    template = server.kind.route(route) if route else None
    return f"{method} {template}" if template else method


def assert_no_hook_only_keys(span: Span) -> None:
    leaked = [k for k in span.attributes if k.startswith(HOOK_ONLY_PREFIXES) or k == "url.full"]
    assert not leaked, f"hook-only attributes on the span: {leaked}"


# ------------------------------------------------------------ name, kind, attributes


def test_span_name_kind_and_attributes(server: OtelServer) -> None:
    tag = new_tag()
    before = time.time_ns()
    with (
        fresh_connections() as client,
        client.stream(
            "GET",
            server.url(f"/items/7?x=1&_t={tag}"),
            headers={"user-agent": "hooktel-otel-tests/1.0"},
        ) as response,
    ):
        client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        body = response.read()
    after = time.time_ns()
    assert response.status_code == 200

    state = server.wait_idle()
    assert state.fast_path_env == server.fast_path
    [span] = state.tagged(tag)
    assert span.name == expected_name(server, "GET", "item")
    assert span.kind == "SERVER"
    assert span.scope == "hooktel.otel"
    assert span.is_root
    # WSGI servers and http.server end the span after the last write: maybe after `after`.
    assert before <= span.start <= after
    assert span.start <= span.end <= time.time_ns()
    attributes = span.attributes
    expected = {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/7",
        "url.query": f"x=1&_t={tag}",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "client.address": "127.0.0.1",
        "client.port": client_port,
        "network.protocol.version": "1.1",
        "user_agent.original": "hooktel-otel-tests/1.0",
        "http.response.status_code": 200,
        "http.response.body.size": len(body),
    }
    assert {k: attributes.get(k) for k in expected} == expected
    if server.kind.route("item"):
        assert attributes["http.route"] == server.kind.route("item")
    else:
        assert "http.route" not in attributes
    assert "error.type" not in attributes
    assert span.status["code"] == "UNSET"
    assert_no_hook_only_keys(span)
    # One SERVER span and the handler's own span: no internal send/receive spans.
    in_trace = [s for s in state.spans if s.trace_id == span.trace_id]
    assert sorted(s.name for s in in_trace) == sorted([span.name, CHILD_SPAN])


def test_unmatched_path_span_is_named_by_method_alone(server: OtelServer) -> None:
    response = server.get("/no/such/path")
    assert response.status_code == 404
    span = server.server_span(response)
    assert span.name == "GET"
    assert "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404
    assert span.status["code"] == "UNSET"


def test_unknown_method_span_is_named_http(server: OtelServer) -> None:
    response = server.request("PURGE", "/anything")
    assert response.status_code == 200
    assert response.content == b"PURGE"
    span = server.server_span(response)
    assert span.name == expected_name(server, "HTTP", "anything")
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"


@pytest.mark.parametrize("route", ["status", "api_item"])
def test_route_templates(server: OtelServer, route: str) -> None:
    """`http.route` comes from the framework's own routing, with no instrumentation in the app.

    `api_item` is under a prefix: a Starlette `Mount`, a FastAPI router prefix, a
    Flask blueprint, a Django `include()`; the route is the whole template.
    """
    target = "/status/201" if route == "status" else "/api/items/9"
    response = server.get(target)
    assert response.status_code == (201 if route == "status" else 200)
    span = server.server_span(response)
    template = server.kind.route(route)
    assert span.attributes.get("http.route") == template
    assert span.name == expected_name(server, "GET", route)


# ------------------------------------------------------------ parent


def test_parent_from_traceparent(server: OtelServer) -> None:
    response = server.get(
        "/items/1",
        headers=[
            ("traceparent", TRACEPARENT),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ],
    )
    assert response.status_code == 200
    span = server.server_span(response)
    assert span.trace_id == TRACE_ID
    assert span.parent_trace_id == TRACE_ID
    assert span.parent_span_id == PARENT_SPAN_ID
    assert span.parent_is_remote is True
    assert span.trace_flags & 1 == 1  # sampled, as the parent said
    assert span.trace_state == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert span.span_id != PARENT_SPAN_ID
    assert_no_hook_only_keys(span)


@pytest.mark.parametrize(
    "lines",
    [["foo=1,foo=2"], ["foo=1", "foo=2"], ["foo=1,bar=2,foo=1"], ["foo=1", "bar=2", "foo=3"]],
    ids=["one line", "two lines", "same value", "three lines"],
)
def test_duplicated_tracestate_keys_are_inherited(server: OtelServer, lines: list[str]) -> None:
    """W3C test suite `test_tracestate_duplicated_keys`: the first of each key is kept."""
    headers = [("traceparent", TRACEPARENT), *(("tracestate", line) for line in lines)]
    response = server.get("/items/1", headers=headers)
    assert response.status_code == 200
    span = server.server_span(response)
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, PARENT_SPAN_ID)
    expected = "foo=1,bar=2" if "bar=2" in "".join(lines) else "foo=1"
    assert span.trace_state == expected
    assert response.headers["tracestate"] == expected


def test_new_trace_without_traceparent(server: OtelServer) -> None:
    first, second = server.get("/items/1"), server.get("/items/2")
    spans = [server.server_span(first), server.server_span(second)]
    for span in spans:
        assert span.is_root
        assert span.trace_id != TRACE_ID
        assert int(span.trace_id, 16) != 0
        assert span.trace_state == ""
    assert spans[0].trace_id != spans[1].trace_id


@pytest.mark.parametrize(
    "traceparents",
    [
        [TRACEPARENT.upper()],
        [f"00-{'0' * 32}-{PARENT_SPAN_ID}-01"],
        [f"00-{TRACE_ID}-{'0' * 16}-01"],
        [f"ff-{TRACE_ID}-{PARENT_SPAN_ID}-01"],
        [f"00-{TRACE_ID}-{PARENT_SPAN_ID}-1"],
        ["garbage"],
        [TRACEPARENT, f"00-{TRACE_ID}-00f067aa0ba902b7-01"],
    ],
    ids=["uppercase", "zero-trace", "zero-span", "version-ff", "short-flags", "garbage", "two"],
)
def test_invalid_traceparent_starts_a_new_trace(
    server: OtelServer, traceparents: list[str]
) -> None:
    headers = [("traceparent", value) for value in traceparents]
    response = server.get("/items/1", headers=[*headers, ("tracestate", "congo=t61rcWkgMzE")])
    assert response.status_code == 200
    span = server.server_span(response)
    assert span.is_root
    assert span.trace_id != TRACE_ID
    assert span.trace_state == ""


# ------------------------------------------------------------ the handler's spans


def test_handler_span_is_a_child_of_the_server_span(server: OtelServer) -> None:
    """In every handler style the app has: asyncio, sync (thread pool), server threads."""
    for style, prefix in server.kind.handlers.items():
        response = server.get(f"{prefix}{style}", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200, style
        seen = response.json()
        state = server.wait_idle()
        [span] = state.tagged(response.request.url.params["_t"])
        [child] = state.children(span)
        assert child.name == CHILD_SPAN
        assert child.kind == "INTERNAL"
        assert child.attributes["handler"] == seen["handler"]
        assert (child.trace_id, child.span_id) == (seen["trace_id"], seen["span_id"])
        assert seen["parent_span_id"] == span.span_id, style
        assert span.trace_id == TRACE_ID
        assert span.start <= child.start <= child.end <= span.end


# ------------------------------------------------------------ status


def test_status_500_is_an_error(server: OtelServer) -> None:
    response = server.get("/status/500")
    assert response.status_code == 500
    span = server.server_span(response)
    assert span.status["code"] == "ERROR"
    assert span.attributes["error.type"] == "500"
    assert span.attributes["http.response.status_code"] == 500
    assert span.events == []


@pytest.mark.parametrize("code", [404, 400, 499])
def test_status_4xx_leaves_the_status_unset(server: OtelServer, code: int) -> None:
    response = server.get(f"/status/{code}")
    assert response.status_code == code
    span = server.server_span(response)
    assert span.status["code"] == "UNSET"
    assert "error.type" not in span.attributes
    assert span.attributes["http.response.status_code"] == code


def test_exception_is_an_error_with_an_exception_event(server: OtelServer) -> None:
    tag = new_tag()
    with fresh_connections() as client:
        if server.kind.exception_status is None:
            with pytest.raises(httpx.RemoteProtocolError):
                server.get("/boom", tag=tag, client=client)
        else:
            response = server.get("/boom", tag=tag, client=client)
            assert response.status_code == server.kind.exception_status
    [span] = server.server_spans(tag)  # ended exactly once
    assert span.status["code"] == "ERROR"
    assert span.attributes["error.type"] == "RuntimeError"
    if server.kind.exception_status is not None:
        assert span.attributes["http.response.status_code"] == server.kind.exception_status
    event = span.event("exception")
    assert event["attributes"]["exception.type"] == "RuntimeError"
    assert event["attributes"]["exception.message"] == BOOM_MESSAGE
    stacktrace = event["attributes"]["exception.stacktrace"]
    assert f"RuntimeError: {BOOM_MESSAGE}" in stacktrace
    assert "in boom" in stacktrace
    assert span.start <= event["timestamp"] <= span.end
    assert_no_hook_only_keys(span)


# ------------------------------------------------------------ streaming


def test_streaming_span_ends_after_the_last_chunk(server: OtelServer) -> None:
    """The span ends when the last byte is sent, not when the handler returns.

    The app sends 4 chunks 50 ms apart, then waits 200 ms before it finishes
    the body; the span must still be open when the client has the last chunk.
    """
    n, interval, tail = 4, 0.05, 0.2
    tag = new_tag()
    last = chunk(n - 1)
    received = b""
    last_chunk_at = 0
    with (
        fresh_connections() as client,
        client.stream(
            "GET", server.url(f"/stream?n={n}&interval={interval}&tail={tail}&_t={tag}")
        ) as response,
    ):
        assert response.status_code == 200
        for data in response.iter_raw():
            received += data
            if not last_chunk_at and last in received:
                last_chunk_at = time.time_ns()
    assert received == b"".join(chunk(i) for i in range(n))
    [span] = server.server_spans(tag)
    assert span.end >= last_chunk_at
    # The app's sleeps: event-loop timers may fire early by their granularity (libuv's: 1 ms).
    assert span.end - span.start >= int(((n - 1) * interval + tail) * 1e9) - 2_000_000
    assert span.attributes["http.response.body.size"] == len(received)
    assert span.status["code"] == "UNSET"
