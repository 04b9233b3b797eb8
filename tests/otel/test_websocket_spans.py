"""One SERVER span per WebSocket connection, named `WS {route}`, current while the app runs.

Starlette and FastAPI websocket routes under uvicorn, traced into an in-memory
exporter, on both span paths (the fast path and the OpenTelemetry API's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hooktel.asgi import TelemetryMiddleware
from hooktel.otel._config import Config
from tests.otel.inprocess import server_spans, traced, uvicorn_thread, wait_until
from tests.otel.support import FAST_PATHS

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def chat(websocket: Any) -> None:
    """Echoes, prefixed with the id of the span current in the app; `boom` raises."""
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text == "boom":
                raise ZeroDivisionError("the app failed")
            span_id = trace.get_current_span().get_span_context().span_id
            await websocket.send_text(f"{span_id:016x} {text}")
    except WebSocketDisconnect:
        pass


def starlette_app() -> Any:
    async def endpoint(websocket: WebSocket) -> None:
        await chat(websocket)

    return Starlette(routes=[WebSocketRoute("/rooms/{room}", endpoint)])


def fastapi_app() -> Any:
    fastapi = pytest.importorskip("fastapi")  # not in the OpenTelemetry floor's run
    app = fastapi.FastAPI()

    @app.websocket("/rooms/{room}")
    async def endpoint(websocket: WebSocket, room: str) -> None:
        await chat(websocket)

    return app


def plain_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    return app


@pytest.fixture(params=FAST_PATHS, ids=lambda p: f"fast{p}")
def exporter(request: pytest.FixtureRequest) -> Iterator[InMemorySpanExporter]:
    with traced(request.param) as (_, exporter):
        yield exporter


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app])
def test_one_span_per_connection_named_after_the_route(
    exporter: InMemorySpanExporter, make_app: Any
) -> None:
    with uvicorn_thread(TelemetryMiddleware(make_app())) as port:
        with connect(
            f"ws://127.0.0.1:{port}/rooms/7", additional_headers={"traceparent": TRACEPARENT}
        ) as client:
            client.send("a")
            current_a = client.recv()
            client.send("b")
            current_b = client.recv()
        [span] = wait_until(lambda: server_spans(exporter), "the connection's span")
    assert span.name == "WS /rooms/{room}"
    assert span.kind is SpanKind.SERVER
    assert f"{span.context.span_id:016x} a" == current_a  # current while the app runs
    assert f"{span.context.span_id:016x} b" == current_b
    assert span.parent is not None and f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.attributes is not None
    assert span.attributes["url.scheme"] == "ws"
    assert span.attributes["http.route"] == "/rooms/{room}"
    assert span.attributes["websocket.message.received.count"] == 2
    assert span.attributes["websocket.close.initiator"] == "client"
    assert span.status.status_code is StatusCode.UNSET
    assert len(exporter.get_finished_spans()) == 1  # no span per message by default


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app])
def test_an_app_that_raises_makes_an_error_span(
    exporter: InMemorySpanExporter, make_app: Any
) -> None:
    with uvicorn_thread(TelemetryMiddleware(make_app())) as port:
        with connect(f"ws://127.0.0.1:{port}/rooms/1") as client:
            client.send("boom")
            with pytest.raises(ConnectionClosed):
                client.recv()
        [span] = wait_until(lambda: server_spans(exporter), "the connection's span")
    assert span.name == "WS /rooms/{room}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "ZeroDivisionError"


def test_a_span_per_message_only_when_asked() -> None:
    with (
        traced("1", websocket_message_spans=True) as (_, exporter),
        uvicorn_thread(TelemetryMiddleware(starlette_app())) as port,
    ):
        with connect(f"ws://127.0.0.1:{port}/rooms/7") as client:
            client.send("a")
            client.recv()
        [connection] = wait_until(lambda: server_spans(exporter), "the connection's span")
    messages = [s for s in exporter.get_finished_spans() if s is not connection]
    assert [s.name for s in messages] == ["WS receive", "WS send"]
    for span in messages:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None and span.parent.span_id == connection.context.span_id
        assert span.attributes is not None and span.attributes["websocket.message.type"] == "text"
    assert messages[0].attributes is not None
    assert messages[0].attributes["websocket.message.size"] == 1


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_message_spans_option_takes_a_bool(value: Any) -> None:
    with pytest.raises(TypeError, match="websocket_message_spans"):
        Config.from_kwargs({"websocket_message_spans": value})


def test_a_connection_without_a_known_route_is_named_ws(exporter: InMemorySpanExporter) -> None:
    with uvicorn_thread(TelemetryMiddleware(plain_app())) as port:
        with connect(f"ws://127.0.0.1:{port}/anywhere"):
            pass
        [span] = wait_until(lambda: server_spans(exporter), "the connection's span")
    assert span.name == "WS"
    assert span.status.status_code is StatusCode.UNSET
