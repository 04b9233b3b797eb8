"""Servers configured only through their environment at startup, as a deployment does it.

`OTEL_PROPAGATORS=b3multi` (the parent then comes from B3 headers, through
the configured propagator) and the header capture, redaction and exclusion
variables, all set before the server process starts; `instrument()` is
called with no options but `tracer_provider`.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hooktel._http.headers import REDACTED
from tests.otel.support import (
    CONTROL,
    ENV_CAPTURE_REQUEST,
    ENV_CAPTURE_RESPONSE,
    ENV_EXCLUDED,
    ENV_SANITIZE,
    FAST_PATHS,
    TRACE_ID,
    TRACEPARENT,
    OtelServer,
    launch,
    new_tag,
    parse_traceparent,
)

B3_TRACE_ID = "463ac35c9f6413ad48485a3953bb6124"
B3_SPAN_ID = "a2fb4a1d1a96d312"
STARTUP_ENV = {
    "OTEL_PROPAGATORS": "b3multi",
    ENV_CAPTURE_REQUEST: "x-req-info,x-internal-id",
    ENV_CAPTURE_RESPONSE: "x-resp-info,x-internal-id",
    ENV_SANITIZE: "x-internal-id",
    ENV_EXCLUDED: f"{CONTROL},/health",
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((kind, fast_path), id=f"{kind}-fast{fast_path}")
        for kind in ("starlette", "flask-sync", "httpserver")
        for fast_path in FAST_PATHS
    ],
)
def startup_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OtelServer]:
    kind, fast_path = request.param
    workdir = tmp_path_factory.mktemp(f"env-{kind}-fast{fast_path}")
    with launch(kind, workdir, fast_path=fast_path, env=STARTUP_ENV) as server:
        yield server


@pytest.fixture
def env_server(startup_server: OtelServer) -> OtelServer:
    startup_server.wait_idle()
    startup_server.configure(clear=True)  # forget spans; keep the startup configuration
    return startup_server


def test_b3_headers_give_the_parent(env_server: OtelServer) -> None:
    response = env_server.get(
        "/items/1",
        headers={"X-B3-TraceId": B3_TRACE_ID, "X-B3-SpanId": B3_SPAN_ID, "X-B3-Sampled": "1"},
    )
    assert response.status_code == 200
    span = env_server.server_span(response)
    assert (span.trace_id, span.parent_span_id) == (B3_TRACE_ID, B3_SPAN_ID)
    assert span.parent_is_remote is True
    assert span.trace_flags & 1 == 1
    # The propagator's headers are read for the parent, not reported as attributes.
    assert not [k for k in span.attributes if "x-b3" in k]
    # The response still says which span answered.
    assert parse_traceparent(response.headers["traceparent"])[:2] == (B3_TRACE_ID, span.span_id)


def test_traceparent_is_not_read_with_b3(env_server: OtelServer) -> None:
    response = env_server.get("/items/1", headers={"traceparent": TRACEPARENT})
    span = env_server.server_span(response)
    assert span.is_root
    assert span.trace_id != TRACE_ID


def test_invalid_b3_headers_start_a_new_trace(env_server: OtelServer) -> None:
    response = env_server.get(
        "/items/1", headers={"X-B3-TraceId": "not-hex", "X-B3-SpanId": B3_SPAN_ID}
    )
    span = env_server.server_span(response)
    assert span.is_root


def test_capture_redaction_and_exclusion_from_the_environment(env_server: OtelServer) -> None:
    response = env_server.get(
        "/items/1",
        headers={"x-req-info": "req-info-value", "x-internal-id": "internal-7", "x-other": "no"},
    )
    span = env_server.server_span(response)
    captured = {k: v for k, v in span.attributes.items() if ".header." in k}
    assert captured == {
        "http.request.header.x-req-info": ["req-info-value"],
        "http.request.header.x-internal-id": [REDACTED],
        "http.response.header.x-resp-info": ["resp-info-value"],
        "http.response.header.x-internal-id": [REDACTED],
    }
    tag = new_tag()
    with httpx.Client(timeout=10.0) as client:
        health = env_server.get("/health", client=client, tag=tag)
    assert health.status_code == 200
    assert "traceparent" not in health.headers
    assert env_server.server_spans(tag) == []
