"""The compiled ASGI hook point against its Python twin, on random scopes and app scripts.

WebSocket scopes too: connections with random message scripts (accepts, sends, closes,
rejections, malformed messages, raises) against a server that delivers messages,
disconnects with any code, or fails a send.

Each example builds an ASGI scope (odd methods, raw paths in every target form, many
and duplicate headers, non-ASCII bytes, odd hosts and traceparents) and a script for
the app (receive, start, body pieces, raise, note a route or a handled exception)
and for the fake server (a send that raises, a client flagged gone, sends that
suspend, a cancellation), then runs it once through `hooktel.asgi.TelemetryMiddleware`
(the C core) and once through `PythonTelemetryMiddleware`: the hook calls, their
attributes, the errors reported, what the server was sent and how the request ended
must be the same.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hooktel.asgi
from tests.native.twins import LEFT_SET, Faults, Witness, outcome_of, witnessing

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

latin1 = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
header_names = st.sampled_from(
    [
        b"host",
        b"user-agent",
        b"content-length",
        b"traceparent",
        b"tracestate",
        b"x-capture",
        b"authorization",
        b"x-api_key",
        b"accept",
        b"x-other",
    ]
)
header_values = st.one_of(
    latin1,
    st.sampled_from(
        [
            TRACEPARENT,
            b" " + TRACEPARENT + b"\t",
            b"example.com:8080",
            b"[::1]:9",
            b"evil/x?y",
            b"12",
            b"0012",
            b"\xb2",
            b"a=1,b=2",
            b"h:99999",
        ]
    ),
)
raw_paths = st.one_of(
    latin1.map(lambda b: b"/" + b.replace(b"?", b"")),
    st.sampled_from([b"*", b"http://x/abs", b"HTTPS://h:8443", b"example.com:443", b"", b"//x"]),
)


@st.composite
def scopes(draw: st.DrawFn) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": draw(st.sampled_from(["GET", "POST", "HEAD", "PURGE", "", "CONNECT", "OPTIONS"])),
        "path": "/decoded",
        "headers": draw(st.lists(st.tuples(header_names, header_values), max_size=8)),
    }
    for key, values in (
        ("raw_path", raw_paths),
        ("query_string", latin1),
        ("scheme", st.sampled_from(["http", "https", "ws"])),
        ("http_version", st.sampled_from(["1.1", "2", ""])),
        ("server", st.sampled_from([("127.0.0.1", 8000), ["::1", 8443], ("h", None), None])),
        ("client", st.sampled_from([("10.0.0.1", 5555), [], None, ["c", None]])),
    ):
        if draw(st.booleans()):
            scope[key] = draw(values)
    if draw(st.booleans()):  # headers as lists, as some servers and test clients give them
        scope["headers"] = [list(pair) for pair in scope["headers"]]
    return scope


actions = st.lists(
    st.one_of(
        st.just(("receive",)),
        st.tuples(
            st.just("start"),
            st.sampled_from([200, 204, 304, 404, 500, 503, 103]),
            st.sampled_from([[], [(b"content-type", b"text/plain")], [(b"set-cookie", b"s=1")]]),
        ),
        st.tuples(st.just("body"), st.binary(max_size=5), st.booleans()),
        st.just(("raise",)),
        st.just(("route",)),
        st.just(("handled",)),
    ),
    max_size=7,
)


@dataclass(frozen=True)
class ServerScript:
    receives: tuple[dict[str, Any], ...]
    send_raises_at: int | None
    gone_at: int | None
    suspend: bool
    throw_at: int | None
    last: tuple[tuple[str, Any], ...] = (("type", "http.disconnect"),)
    """What `receive` gives once the script's messages are used up."""


servers = st.builds(
    ServerScript,
    receives=st.lists(
        st.sampled_from(
            [
                {"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"", "more_body": False},
                {"type": "http.disconnect"},
            ]
        ),
        max_size=3,
    ).map(tuple),
    send_raises_at=st.none() | st.integers(0, 3),
    gone_at=st.none() | st.integers(0, 3),
    suspend=st.booleans(),
    throw_at=st.none() | st.integers(1, 4),
)

faults = st.builds(
    Faults,
    raising=st.frozensets(st.sampled_from(["start", "inject", "end", "error"])),
    present=st.frozensets(st.sampled_from(["start", "inject", "end", "error"]), min_size=1),
    inject=st.sampled_from(
        [
            None,
            {"x-a": "1"},
            {"content-length": "5"},
            {"bad\n": "x"},
            "not a mapping",
            {"x-b": "v", "X-B": "w"},
            {"x-é": "ü"},
        ]
    ),
    capture_request=st.sampled_from([(), ("x-capture", "authorization", "x-api_key"), ("host",)]),
    capture_response=st.sampled_from([(), ("content-type", "set-cookie")]),
)


@types.coroutine
def _suspend() -> Generator[None, None, None]:
    yield


class FakeCycle:
    """The server's side of one request; `send` is bound to it, as uvicorn's is."""

    def __init__(self, script: ServerScript, witness: Witness) -> None:
        self.script = script
        self.witness = witness
        self.disconnected = False
        self.sends = 0
        self.receives = list(script.receives)

    async def send(self, message: dict[str, Any]) -> None:
        call = self.sends
        self.sends += 1
        copied = dict(message)
        if "headers" in copied:
            copied["headers"] = [tuple(pair) for pair in copied["headers"]]
        self.witness.server.append(("send", copied))
        if self.script.suspend:
            await _suspend()
        if self.script.send_raises_at == call:
            raise ConnectionResetError("client went away")
        if self.script.gone_at is not None and call >= self.script.gone_at:
            self.disconnected = True

    async def receive(self) -> dict[str, Any]:
        self.witness.server.append(("receive",))
        if self.script.suspend:
            await _suspend()
        return self.receives.pop(0) if self.receives else dict(self.script.last)


websocket_scopes = (
    scopes()
    .map(lambda scope: {**scope, "type": "websocket", "scheme": scope.get("scheme", "ws")})
    .flatmap(
        lambda scope: st.sampled_from([None, ["chat"], ["a", "b"], []]).map(
            lambda offered: scope if offered is None else {**scope, "subprotocols": offered}
        )
    )
)

websocket_messages = st.sampled_from(
    [
        {"type": "websocket.accept"},
        {"type": "websocket.accept", "subprotocol": "chat"},
        {"type": "websocket.send", "text": "héllo"},
        {"type": "websocket.send", "bytes": b"\x00\x01"},
        {"type": "websocket.close"},
        {"type": "websocket.close", "code": 1001},
        {"type": "websocket.close", "code": 4000, "reason": "bye"},
        {"type": "websocket.http.response.start", "status": 401, "headers": []},
        {"type": "websocket.http.response.body", "body": b"no"},
        # malformed: for the server to reject, never for the middleware to trip on
        {"type": "websocket.send"},
        {"type": "websocket.send", "text": 5},
        {"type": "websocket.close", "code": "x"},
        {"type": "websocket.bogus"},
        {"no": "type"},
        None,
    ]
)

websocket_actions = st.lists(
    st.one_of(
        st.just(("receive",)),
        st.tuples(st.just("send"), websocket_messages),
        st.just(("raise",)),
        st.just(("route",)),
    ),
    max_size=7,
)

websocket_servers = st.builds(
    ServerScript,
    receives=st.lists(
        st.sampled_from(
            [
                {"type": "websocket.connect"},
                {"type": "websocket.receive", "text": "ü"},
                {"type": "websocket.receive", "bytes": b"abc"},
                {"type": "websocket.receive"},
                {"type": "websocket.disconnect", "code": 1000},
                {"type": "websocket.disconnect", "code": 1006},
                {"type": "websocket.disconnect", "code": HTTPStatus.OK},  # an IntEnum, as wsproto's
                {"type": "websocket.disconnect", "code": True},
                {"type": "websocket.disconnect"},
            ]
        ),
        max_size=4,
    ).map(tuple),
    send_raises_at=st.none() | st.integers(0, 3),
    gone_at=st.none(),
    suspend=st.booleans(),
    throw_at=st.none() | st.integers(1, 4),
    last=st.sampled_from(
        [(("type", "websocket.disconnect"), ("code", code)) for code in (1000, 1001, 1006, 1009)]
    ),
)


def make_app(script: list[Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for action in script:
            if action[0] == "receive":
                await receive()
            elif action[0] == "start":
                await send(
                    {"type": "http.response.start", "status": action[1], "headers": action[2]}
                )
            elif action[0] == "body":
                await send(
                    {"type": "http.response.body", "body": action[1], "more_body": action[2]}
                )
            elif action[0] == "send":
                await send(action[1])
            elif action[0] == "raise":
                raise ValueError("app failed")
            elif action[0] == "route":
                scope["hooktel.route"] = "/items/{id}"
            else:
                scope["hooktel.exception"] = KeyError("handled by the framework")

    return app


def drive(awaitable: Awaitable[None], throw_at: int | None) -> BaseException | None:
    """Run `awaitable` as a task would, with no loop: resume each suspension at once,
    or throw a cancellation into the `throw_at`-th one."""
    steps = awaitable.__await__()
    suspensions = 0
    try:
        steps.send(None)
        while True:
            suspensions += 1
            if suspensions == throw_at:
                steps.throw(asyncio.CancelledError())
            else:
                steps.send(None)
    except StopIteration:
        return None
    except BaseException as exc:
        return exc


def run(
    middleware: type,
    *,
    scope: dict[str, Any],
    script: list[Any],
    server: ServerScript,
    fault: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> Witness:
    request_scope = {**scope, "headers": list(scope["headers"])}
    with witnessing(fault, monkeypatch) as witness:
        cycle = FakeCycle(server, witness)
        app = middleware(make_app(script))
        try:
            raised = drive(app(request_scope, cycle.receive, cycle.send), server.throw_at)
        except BaseException as exc:  # raised by the call itself, before any await
            raised = exc
    witness.outcome = (
        outcome_of(raised),
        "hooktel.operation" in request_scope,
        LEFT_SET.get(None),  # what the hooks set never reaches the server's context
    )
    return witness


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scope=scopes(), script=actions, server=servers, fault=faults)
def test_native_and_python_report_the_same(
    scope: dict[str, Any],
    script: list[Any],
    server: ServerScript,
    fault: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = {"scope": scope, "script": script, "server": server, "fault": fault}
    native = run(hooktel.asgi.TelemetryMiddleware, **request, monkeypatch=monkeypatch)
    python = run(hooktel.asgi.PythonTelemetryMiddleware, **request, monkeypatch=monkeypatch)
    assert native.normalised() == python.normalised()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scope=websocket_scopes, script=websocket_actions, server=websocket_servers, fault=faults)
def test_native_and_python_report_the_same_connections(
    scope: dict[str, Any],
    script: list[Any],
    server: ServerScript,
    fault: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = {"scope": scope, "script": script, "server": server, "fault": fault}
    native = run(hooktel.asgi.TelemetryMiddleware, **connection, monkeypatch=monkeypatch)
    python = run(hooktel.asgi.PythonTelemetryMiddleware, **connection, monkeypatch=monkeypatch)
    assert native.normalised() == python.normalised()
    assert python.outcome[1]  # a connection is an operation in both


def test_the_native_middleware_is_the_compiled_one() -> None:
    assert hooktel.asgi.TelemetryMiddleware is not hooktel.asgi.PythonTelemetryMiddleware
    assert type(hooktel.asgi.TelemetryMiddleware.__call__).__name__ == "function"


def test_servers_see_an_asgi3_app() -> None:
    """uvicorn and hypercorn tell ASGI 3 from ASGI 2 (and WSGI) by `__call__`."""
    app = hooktel.asgi.TelemetryMiddleware(make_app([]))
    assert inspect.iscoroutinefunction(app.__call__)
    assert asyncio.iscoroutinefunction(app.__call__)


def test_nothing_attached_returns_the_apps_own_awaitable() -> None:
    """No frame of its own with nothing attached: the app's coroutine comes back as is."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    for kind in ("http", "websocket"):
        coroutine = hooktel.asgi.TelemetryMiddleware(app)({"type": kind}, None, None)
        assert inspect.iscoroutine(coroutine) and coroutine.cr_code is app.__code__
        coroutine.close()
