"""`HttpInstrumentation.instrument()` options and their environment variables, on real servers.

Response propagation modes, excluded URLs, captured and redacted headers,
request and response hooks. Each test resets the server's instrumentation
with the options it needs (see `OtelServer.reset`); the environment variables
are set in the server process before `instrument()` runs, as a deployment
would set them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hooktel._http.headers import REDACTED
from tests.otel.apps.harness import (
    CHILD_SPAN,
    HOOK_ERROR,
    REQUEST_HOOK_ATTRIBUTE,
    RESPONSE_HOOK_ATTRIBUTE,
)
from tests.otel.support import (
    CONTROL,
    ENV_CAPTURE_REQUEST,
    ENV_CAPTURE_RESPONSE,
    ENV_EXCLUDED,
    ENV_HOOKTEL_EXCLUDED,
    ENV_SANITIZE,
    ENV_SEMCONV,
    TRACE_ID,
    TRACEPARENT,
    OtelServer,
    new_tag,
    parse_traceparent,
)
from tests.support.events import wait_for

PROPAGATION_HEADERS = ("traceparent", "tracestate", "traceresponse", "server-timing")

# ------------------------------------------------------------ response propagation


def test_response_carries_traceparent_by_default(server: OtelServer) -> None:
    response = server.get("/items/1")
    span = server.server_span(response)
    trace_id, span_id, flags = parse_traceparent(response.headers["traceparent"])
    assert (trace_id, span_id, flags) == (span.trace_id, span.span_id, span.trace_flags)
    for name in ("tracestate", "traceresponse", "server-timing"):
        assert name not in response.headers, name


def test_response_traceparent_passes_tracestate_through(server: OtelServer) -> None:
    response = server.get(
        "/items/1", headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    )
    span = server.server_span(response)
    assert response.headers["traceparent"] == f"00-{TRACE_ID}-{span.span_id}-{span.trace_flags:02x}"
    assert response.headers["tracestate"] == "congo=t61rcWkgMzE"


@pytest.mark.parametrize("mode", ["traceresponse", "server-timing", None])
def test_response_propagation_modes(server: OtelServer, mode: str | None) -> None:
    server.reset(otel={"response_propagation": mode})
    for target in ("/items/1", "/status/500", "/no/such/path"):
        response = server.get(target, headers={"traceparent": TRACEPARENT})
        span = server.server_span(response)
        value = f"00-{span.trace_id}-{span.span_id}-{span.trace_flags:02x}"
        expected = {
            "traceresponse": {"traceresponse": value},
            "server-timing": {"server-timing": f'traceparent;desc="{value}"'},
            None: {},
        }[mode]
        found = {
            name: response.headers[name] for name in PROPAGATION_HEADERS if name in response.headers
        }
        assert found == expected, target


def test_streaming_response_carries_traceparent(server: OtelServer) -> None:
    response = server.get("/stream?n=2&interval=0&tail=0")
    assert response.status_code == 200
    span = server.server_span(response)
    assert parse_traceparent(response.headers["traceparent"])[:2] == (span.trace_id, span.span_id)


# ------------------------------------------------------------ excluded URLs


def assert_excluded(server: OtelServer) -> None:
    """`/health` gets no span and no header, and its handler sees no span as current.

    On one connection (one thread where the server has them) after a traced
    request, so a context left behind by that one would show up here.
    """
    tag, traced_tag = new_tag(), new_tag()
    with httpx.Client(timeout=10.0) as client:
        traced = server.get("/items/1", client=client, tag=traced_tag)
        health = server.get("/health", client=client, tag=tag, headers={"traceparent": TRACEPARENT})
    assert traced.status_code == health.status_code == 200
    assert "traceparent" in traced.headers
    for name in PROPAGATION_HEADERS:
        assert name not in health.headers, name
    state = server.wait_idle()
    assert state.tagged(tag) == []
    assert len(state.tagged(traced_tag)) == 1
    [health_child] = [s for s in state.spans if s.attributes.get("handler") == "health"]
    assert health_child.name == CHILD_SPAN
    assert health_child.is_root  # neither the traceparent nor the previous request's span
    assert health_child.trace_id == health.json()["trace_id"] != TRACE_ID
    assert state.stale == []


def test_excluded_urls_option(server: OtelServer) -> None:
    server.reset(otel={"excluded_urls": "/nothing-here,/heal.h"})
    assert_excluded(server)


@pytest.mark.parametrize("variable", [ENV_EXCLUDED, ENV_HOOKTEL_EXCLUDED])
def test_excluded_urls_environment(server: OtelServer, variable: str) -> None:
    server.reset(env={variable: f"{CONTROL},/nothing-here,/heal.h"})
    assert_excluded(server)


# ------------------------------------------------------------ captured headers

REQUEST_HEADERS = [
    ("x-req-info", "req-info-value"),
    ("x-internal-id", "internal-7"),
    ("authorization", "Bearer hunter2"),
    ("x-not-captured", "nope"),
]
CAPTURE_REQUEST = ["X-Req-Info", "x-internal-id", "authorization"]
CAPTURE_RESPONSE = ["x-resp-info", "X-Internal-Id", "set-cookie"]


def captured(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in attributes.items()
        if k.startswith(("http.request.header.", "http.response.header."))
    }


@pytest.mark.parametrize("sanitize", [None, "x-internal-.*"], ids=["plain", "sanitized"])
@pytest.mark.parametrize("source", ["option", "environment"])
def test_captured_headers(server: OtelServer, source: str, sanitize: str | None) -> None:
    """Listed headers are attributes; secrets always, and sanitized names, are redacted."""
    env: dict[str, str | None] = {ENV_SANITIZE: sanitize}
    options: dict[str, Any] = {}
    if source == "option":
        options = {
            "capture_request_headers": CAPTURE_REQUEST,
            "capture_response_headers": CAPTURE_RESPONSE,
        }
    else:
        env[ENV_CAPTURE_REQUEST] = ",".join(CAPTURE_REQUEST)
        env[ENV_CAPTURE_RESPONSE] = " , ".join(CAPTURE_RESPONSE)
    server.reset(otel=options, env=env)
    response = server.get("/items/1", headers=REQUEST_HEADERS)
    assert response.status_code == 200
    span = server.server_span(response)
    internal = [REDACTED] if sanitize else None
    assert captured(span.attributes) == {
        "http.request.header.x-req-info": ["req-info-value"],
        "http.request.header.x-internal-id": internal or ["internal-7"],
        "http.request.header.authorization": [REDACTED],
        "http.response.header.x-resp-info": ["resp-info-value"],
        "http.response.header.x-internal-id": internal or ["internal-42"],
        "http.response.header.set-cookie": [REDACTED],
    }


def test_no_headers_captured_by_default(server: OtelServer) -> None:
    response = server.get("/items/1", headers=REQUEST_HEADERS)
    assert captured(server.server_span(response).attributes) == {}


# ------------------------------------------------------------ hooks


def test_request_and_response_hooks(server: OtelServer) -> None:
    server.reset(otel={"request_hook": "record", "response_hook": "record"})
    response = server.get("/items/3")
    span = server.server_span(response)
    assert span.attributes[REQUEST_HOOK_ATTRIBUTE] == "/items/3"
    assert span.attributes[RESPONSE_HOOK_ATTRIBUTE] == 200
    response = server.get("/status/503")
    assert server.server_span(response).attributes[RESPONSE_HOOK_ATTRIBUTE] == 503


@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_raising_hook_is_logged_and_the_request_succeeds(server: OtelServer, hook: str) -> None:
    offset = server.stderr_size()
    server.reset(otel={hook: "raise"})
    response = server.get("/items/1")
    assert response.status_code == 200
    assert "traceparent" in response.headers
    span = server.server_span(response)
    assert span.status["code"] == "UNSET"
    line = f"[hooktel] Error in {hook} (hooktel.otel v"
    logged = wait_for(
        lambda: [row for row in server.stderr(offset).splitlines() if row.startswith(line)],
        f"the {hook} error line on the server's stderr",
    )
    assert logged[0].endswith(f"RuntimeError: {HOOK_ERROR}"), logged


# ------------------------------------------------------------ contrib's option names


def test_contrib_capture_option_names_work(server: OtelServer) -> None:
    server.reset(
        otel={
            "http_capture_headers_server_request": CAPTURE_REQUEST,
            "http_capture_headers_server_response": CAPTURE_RESPONSE,
            "http_capture_headers_sanitize_fields": ["x-internal-.*"],
        }
    )
    response = server.get("/items/1", headers=REQUEST_HEADERS)
    assert captured(server.server_span(response).attributes) == {
        "http.request.header.x-req-info": ["req-info-value"],
        "http.request.header.x-internal-id": [REDACTED],
        "http.request.header.authorization": [REDACTED],
        "http.response.header.x-resp-info": ["resp-info-value"],
        "http.response.header.x-internal-id": [REDACTED],
        "http.response.header.set-cookie": [REDACTED],
    }


# ------------------------------------------------------------ OTEL_SEMCONV_STABILITY_OPT_IN

OLD_AND_NEW = {
    "http.method": "http.request.method",
    "http.scheme": "url.scheme",
    "net.host.name": "server.address",
    "net.host.port": "server.port",
    "net.peer.ip": "client.address",
    "net.peer.port": "client.port",
    "http.flavor": "network.protocol.version",
    "http.user_agent": "user_agent.original",
    "http.status_code": "http.response.status_code",
    "http.response_content_length": "http.response.body.size",
}


@pytest.mark.parametrize("opt_in", [None, "http", "database,http/dup", "http/dup"])
def test_semconv_stability_opt_in(server: OtelServer, opt_in: str | None) -> None:
    """Stable names by default and with `http`; `http/dup` adds the old ones beside them."""
    server.reset(env={ENV_SEMCONV: opt_in})
    response = server.get("/anything?x=1")
    span = server.server_span(response)
    attributes = span.attributes
    for old, new in OLD_AND_NEW.items():
        assert new in attributes, new
        if opt_in and "http/dup" in opt_in:
            assert attributes[old] == attributes[new], old
        else:
            assert old not in attributes, old
    if opt_in and "http/dup" in opt_in:
        assert attributes["http.target"] == f"{attributes['url.path']}?{attributes['url.query']}"
        assert attributes["http.url"].endswith(attributes["http.target"])
    else:
        assert not {"http.target", "http.url"} & set(attributes)
