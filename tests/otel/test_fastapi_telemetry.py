"""FastAPI 0.165's own telemetry beside hooktel: one SERVER span per request.

With a global tracer provider FastAPI traces every request itself (a SERVER
span, and operation spans for the dependencies, the endpoint and the
serialization). For the requests hooktel traces, FastAPI's request span steps
aside: its operation spans are children of hooktel's SERVER span, in its trace.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.otel.apps.harness import BOOM_MESSAGE, CHILD_SPAN
from tests.otel.support import KINDS, TRACE_ID, TRACEPARENT, Kind, OtelServer, Span, launch

fastapi = pytest.importorskip("fastapi")  # the SDK-floor run has none


@pytest.fixture(scope="module", params=["0", "1"], ids=lambda p: f"fast{p}")
def global_provider_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OtelServer]:
    pinned = "0.165.0" if sys.version_info >= (3, 11) else "0.162.5"  # requirements-dev.txt
    assert fastapi.__version__ == pinned, "the version this project pins and tests"
    base = KINDS["fastapi"]
    args = tuple(
        "tests.otel.apps.late_app:app" if arg.endswith(":app") else arg for arg in base.spec.args
    )
    kind = Kind("fastapi-global-provider", base.spec.__class__(args, base.spec.listening))
    env = {"HOOKTEL_TEST_FRAMEWORK": "fastapi", "HOOKTEL_TEST_GLOBAL_PROVIDER": "1"}
    workdir = tmp_path_factory.mktemp(kind.name)
    with launch(kind, workdir, env=env, fast_path=request.param) as server:
        yield server


def _trace(server: OtelServer, span: Span) -> list[Span]:
    return [s for s in server.wait_idle().spans if s.trace_id == span.trace_id]


def _descends_from(span: Span, root: Span, spans: list[Span]) -> bool:
    by_id = {s.span_id: s for s in spans}
    while span.parent_span_id is not None:
        if span.parent_span_id == root.span_id:
            return True
        if span.parent_span_id not in by_id:
            return False
        span = by_id[span.parent_span_id]
    return False


def test_fastapi_traces_by_itself_without_hooktel(global_provider_server: OtelServer) -> None:
    """The control: FastAPI's telemetry is on in this server, so the next test means something."""
    server = global_provider_server
    server.reset(otel=False)
    try:
        server.get("/items/1")
        state = server.wait_idle()
        fastapi_server_spans = [s for s in state.server_spans() if s.scope == "fastapi"]
        assert len(fastapi_server_spans) == 1
    finally:
        server.reset()


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT], ids=["new-trace", "with-parent"])
def test_one_server_span_per_request(
    global_provider_server: OtelServer, traceparent: str | None
) -> None:
    server = global_provider_server
    server.reset()
    headers = {"traceparent": traceparent} if traceparent else {}
    response = server.get("/items/1", headers=headers)
    assert response.status_code == 200
    hooktel_span = server.server_span(response)
    assert hooktel_span.scope == "hooktel.otel"
    if traceparent:
        assert hooktel_span.trace_id == TRACE_ID
    spans = _trace(server, hooktel_span)
    assert [s.name for s in spans if s.kind == "SERVER"] == [hooktel_span.name]
    assert all(s.kind == "SERVER" for s in server.wait_idle().spans if s.scope == "hooktel.otel")
    operations = [s for s in spans if s.scope == "fastapi"]
    assert {s.name for s in operations} >= {"fastapi.endpoint"}, [s.name for s in spans]
    for span in operations:
        assert _descends_from(span, hooktel_span, spans), span
    [child] = [s for s in spans if s.name == CHILD_SPAN]
    assert _descends_from(child, hooktel_span, spans)
    assert response.json()["trace_id"] == hooktel_span.trace_id
    assert hooktel_span.attributes["http.route"] == "/items/{item_id}"


def test_an_exception_is_one_server_span_with_the_error(global_provider_server: OtelServer) -> None:
    server = global_provider_server
    server.reset()
    response = server.get("/boom")
    assert response.status_code == 500
    span = server.server_span(response)
    spans = _trace(server, span)
    assert [s for s in spans if s.kind == "SERVER"] == [span]
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.event("exception")["attributes"]["exception.message"] == BOOM_MESSAGE
