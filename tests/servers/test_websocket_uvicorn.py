"""WebSocket connections through the ASGI hook point, under uvicorn, with a real client.

Each test runs under both of uvicorn's WebSocket implementations (`websockets-sansio`,
`wsproto`) and through both middlewares (the compiled one, where built, and its Python
twin): one start and exactly one end or error per connection, whatever the client,
the app or the server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

import hooktel
from hooktel.asgi import PythonTelemetryMiddleware, TelemetryMiddleware
from tests.otel.inprocess import uvicorn_thread
from tests.support.events import wait_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MAX_SIZE = 4096

MIDDLEWARES = [pytest.param(PythonTelemetryMiddleware, id="python")]
if TelemetryMiddleware is not PythonTelemetryMiddleware:
    MIDDLEWARES.append(pytest.param(TelemetryMiddleware, id="compiled"))


class Recorder:
    """An HTTP instrument keeping every event, in order, safe to read from the test thread."""

    kind = "http"
    name = "websocket-recorder"
    version = "1"

    def __init__(self) -> None:
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.messages: list[tuple[int, str, str, int]] = []  # op id, direction, type, size
        self._lock = threading.Lock()

    def _add(self, event: str, op_id: int, attrs: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.events.append((event, op_id, dict(attrs or {})))

    def on_operation_start(self, op_id: int, attrs: dict[str, Any]) -> None:
        self._add("start", op_id, attrs)

    def on_operation_end(self, op_id: int, attrs: dict[str, Any]) -> None:
        self._add("end", op_id, attrs)

    def on_operation_error(self, op_id: int, attrs: dict[str, Any]) -> None:
        self._add("error", op_id, attrs)

    def on_operation_message(self, op_id: int, attrs: dict[str, Any]) -> None:
        assert attrs["operation.id"] == op_id and attrs["operation.timestamp"] > 0
        with self._lock:
            assert op_id not in {i for e, i, _ in self.events if e != "start"}, "after the end"
            self.messages.append(
                (
                    op_id,
                    attrs["websocket.message.direction"],
                    attrs["websocket.message.type"],
                    attrs["websocket.message.size"],
                )
            )

    def closed(self, count: int = 1) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Wait for `count` closed connections: (end or error, start attrs, close attrs)."""

        def done() -> list[tuple[str, dict[str, Any], dict[str, Any]]] | None:
            with self._lock:
                events = list(self.events)
            starts = {op_id: attrs for event, op_id, attrs in events if event == "start"}
            closes = [(e, starts[op_id], a) for e, op_id, a in events if e != "start"]
            return closes if len(closes) >= count else None

        closes = wait_for(done, f"{count} connection(s) to close")
        with self._lock:
            per_op: dict[int, list[str]] = {}
            for event, op_id, _ in self.events:
                per_op.setdefault(op_id, []).append(event)
        assert all(seq in (["start", "end"], ["start", "error"]) for seq in per_op.values()), per_op
        return closes


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Behaves by path: `/echo` (the default), `/raise`, `/close`, `/reject`, `/refuse`,
    `/forever`, `/unhandled`."""
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    if path == "/refuse":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})
        return
    offered = scope.get("subprotocols") or [None]
    await send({"type": "websocket.accept", "subprotocol": offered[0]})
    if path == "/forever":
        await asyncio.Event().wait()
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            if path == "/unhandled":  # as Starlette's `receive_text` raises, uncaught
                raise RuntimeError(f"disconnected with {message.get('code')}")
            return
        if path == "/raise":
            raise ZeroDivisionError("the app failed")
        if path == "/close":
            await send({"type": "websocket.close", "code": 4000, "reason": "done"})
            return
        payload = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
        await send({"type": "websocket.send", **payload})


@pytest.fixture(params=["websockets-sansio", "wsproto"])
def ws(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=MIDDLEWARES)
def served(request: pytest.FixtureRequest, ws: str) -> Iterator[tuple[int, Recorder]]:
    recorder = Recorder()
    with (
        hooktel.attach(recorder),
        uvicorn_thread(
            request.param(app), ws=ws, ws_max_size=MAX_SIZE, timeout_graceful_shutdown=1
        ) as port,
    ):
        yield port, recorder


def test_a_connection_is_one_operation(served: tuple[int, Recorder]) -> None:
    port, recorder = served
    with connect(
        f"ws://127.0.0.1:{port}/echo?room=1",
        subprotocols=[Subprotocol("chat"), Subprotocol("v2")],
        additional_headers={"traceparent": TRACEPARENT, "user-agent": "ws-test/1"},
    ) as client:
        client.send("héllo")
        assert client.recv() == "héllo"
        client.send(b"\x00\x01\x02")
        assert client.recv() == b"\x00\x01\x02"
    [(event, start, end)] = recorder.closed()
    assert event == "end"
    assert start["url.scheme"] == "ws"
    assert start["url.path"] == "/echo" and start["url.query"] == "room=1"
    assert start["url.full"] == f"ws://127.0.0.1:{port}/echo?room=1"
    assert (start["server.address"], start["server.port"]) == ("127.0.0.1", port)
    assert start["client.address"] == "127.0.0.1" and start["client.port"] > 0
    assert start["user_agent.original"] == "ws-test/1"
    assert start["websocket.subprotocols"] == ("chat", "v2")
    assert start["trace.parent.trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert start["trace.parent.span_id"] == "b7ad6b7169203331"
    assert end["websocket.subprotocol"] == "chat"
    assert end["websocket.close.initiator"] == "client"
    assert end["websocket.close.code"] == 1000
    assert end["websocket.message.received.count"] == 2
    assert end["websocket.message.received.size"] == len("héllo".encode()) + 3
    assert end["websocket.message.sent.count"] == 2
    assert end["websocket.message.sent.size"] == len("héllo".encode()) + 3
    assert [m[1:] for m in recorder.messages] == [
        ("received", "text", 6),
        ("sent", "text", 6),
        ("received", "binary", 3),
        ("sent", "binary", 3),
    ]
    assert {m[0] for m in recorder.messages} == {end["operation.id"]}
    assert "error.type" not in end


def test_an_app_that_raises_is_an_error(served: tuple[int, Recorder]) -> None:
    port, recorder = served
    with connect(f"ws://127.0.0.1:{port}/raise") as client:
        client.send("x")
        with pytest.raises(ConnectionClosed):
            client.recv()
    [(event, _, error)] = recorder.closed()
    assert event == "error"
    assert error["error.type"] == "ZeroDivisionError"
    assert "ZeroDivisionError: the app failed" in error["exception.stacktrace"]
    assert error["websocket.message.received.count"] == 1


def test_a_raise_after_the_clients_normal_close_is_an_end(served: tuple[int, Recorder]) -> None:
    """Frameworks raise their disconnect exception into an app that reads after the
    client's close: after a normal close that is no error."""
    port, recorder = served
    with connect(f"ws://127.0.0.1:{port}/unhandled") as client:
        client.send("x")
        client.recv()
    [(event, _, end)] = recorder.closed()
    assert event == "end"
    assert end["websocket.close.initiator"] == "client"


def test_a_raise_after_the_client_vanished_is_client_disconnected(
    served: tuple[int, Recorder],
) -> None:
    port, recorder = served
    _reset(_raw_connection(port, "/unhandled"))
    [(event, _, error)] = recorder.closed()
    assert event == "error"
    assert error["error.type"] == "ClientDisconnected"


def test_the_app_closing_is_the_servers_close(served: tuple[int, Recorder]) -> None:
    port, recorder = served
    with connect(f"ws://127.0.0.1:{port}/close") as client:
        client.send("x")
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    [(event, _, end)] = recorder.closed()
    assert event == "end"
    assert (end["websocket.close.code"], end["websocket.close.initiator"]) == (4000, "server")


@pytest.mark.parametrize(("path", "status"), [("/reject", 403), ("/refuse", 401)])
def test_a_rejected_handshake_ends_with_its_status(
    served: tuple[int, Recorder], path: str, status: int
) -> None:
    port, recorder = served
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{port}{path}")
    assert refused.value.response.status_code == status
    [(event, _, end)] = recorder.closed()
    assert event == "end"
    assert end["http.response.status_code"] == status
    assert end["websocket.message.sent.count"] == 0


def _raw_connection(port: int, path: str = "/echo") -> socket.socket:
    """A completed handshake on a plain socket, for writing frames by hand."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_client_vanishing_mid_message(served: tuple[int, Recorder]) -> None:
    port, recorder = served
    sock = _raw_connection(port)
    sock.sendall(b"\x81\x85abcd")  # a masked text frame of 5 bytes: its head, no payload
    _reset(sock)
    [(event, _, end)] = recorder.closed()
    assert event == "end"
    assert end["websocket.close.initiator"] == "client"
    assert end["websocket.close.code"] not in (1000, 1001)
    assert end["websocket.message.received.count"] == 0


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"\x82\xff" + (10 * MAX_SIZE).to_bytes(8, "big") + b"abcd", id="oversized"),
        pytest.param(b"\x83\x80abcd", id="reserved-opcode"),
        pytest.param(b"\x81\x00", id="unmasked"),
    ],
)
def test_a_bad_frame_closes_the_connection_once(served: tuple[int, Recorder], frame: bytes) -> None:
    port, recorder = served
    sock = _raw_connection(port)
    sock.sendall(frame)
    try:
        while sock.recv(1024):  # until the server closes
            pass
    except OSError:
        pass
    sock.close()
    [(event, _, end)] = recorder.closed()
    assert event == "end"
    assert end["websocket.close.initiator"] == "client"
    assert end["websocket.close.code"] not in (1000, 1001)


def test_a_handshake_never_completed_is_no_operation(served: tuple[int, Recorder]) -> None:
    port, recorder = served
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: webs".encode())
    with connect(f"ws://127.0.0.1:{port}/echo") as client:  # then one that completes
        client.send("x")
        client.recv()
    [(event, start, _)] = recorder.closed()
    assert event == "end" and start["url.path"] == "/echo"
    assert len(recorder.events) == 2


@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_an_app_that_never_closes_ends_once_when_the_server_stops(ws: str, middleware: Any) -> None:
    """Open while the app runs, however long; bounded by the server's graceful shutdown,
    which cancels the app: then one error."""
    recorder = Recorder()
    with hooktel.attach(recorder), contextlib.ExitStack() as client_open:
        with uvicorn_thread(middleware(app), ws=ws, timeout_graceful_shutdown=1) as port:
            client_open.enter_context(connect(f"ws://127.0.0.1:{port}/forever"))
            wait_for(lambda: recorder.events, "the connection to start")
            assert [event for event, _, _ in recorder.events] == ["start"]
        [(event, _, error)] = recorder.closed()
    assert event == "error"
    assert error["error.type"] == "CancelledError"
