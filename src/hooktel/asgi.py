"""Hook points for any ASGI 3 application (uvicorn, hypercorn, granian, ...).

Wrap the app: `app = TelemetryMiddleware(app)`. Each `http` scope is a request
and each `websocket` scope a connection, reported to the HTTP instruments. With
nothing attached the middleware checks the registry once and awaits the app as it is.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any, TypeVar, cast

from ._core import core
from ._http.operation import CLIENT_DISCONNECTED, HttpOperation
from ._http.request import (
    EXCEPTION_KEY,
    OPERATION_KEY,
    ROUTE_KEY,
    begin_http,
    header_pairs,
    omits_body,
)
from ._http.websocket import (
    NO_STATUS_CODE,
    REJECTED_STATUS,
    SUBPROTOCOLS,
    WebSocketOperation,
)
from ._registry.hooks import HOOKS_BY_KIND, HTTP_KIND, Hooks
from ._registry.instrument import Attributes
from .frameworks import install_notes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")


install_notes()  # frameworks tell the route and the exceptions they answer through the scope


class TelemetryMiddleware:
    """Reports each `http` request and `websocket` connection of the wrapped app to the
    attached HTTP instruments."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hooks = HOOKS_BY_KIND[HTTP_KIND]
        if hooks is not None and OPERATION_KEY not in scope:
            kind = scope["type"]
            if kind == "http":
                await _Request(hooks, scope, receive, send).run(self.app)
                return
            if kind == "websocket":
                await run_websocket(hooks, self.app, scope, receive, send)
                return
        await self.app(scope, receive, send)


def begin_scope(
    hooks: Hooks,
    scope: Scope,
    method: str,
    default_scheme: str,
    *,
    operation: type[HttpOperation] = HttpOperation,
    extra: Attributes | None = None,
) -> HttpOperation:
    """`begin_http` for an `http` or `websocket` scope: what each scope key means."""
    server = scope.get("server")
    client = scope.get("client")
    raw_path = scope.get("raw_path")
    return begin_http(
        hooks,
        method=method,
        scheme=scope.get("scheme", default_scheme),
        path=raw_path.decode("latin-1") if raw_path else scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=scope["headers"],  # lowercase names as bytes: the scan decodes what it reads
        server=server if server and server[1] is not None else None,  # [host, port]
        client=client or None,
        protocol=scope.get("http_version", ""),
        operation=operation,
        extra=extra,
    )


@types.coroutine
def run_in_context(context: contextvars.Context, awaitable: Awaitable[T]) -> Generator[Any, Any, T]:
    """Await `awaitable` with each of its steps run in `context`.

    What the steps set in their context vars stays in `context`, whichever
    task awaits: the request's own context for the app and the hooks, a copy
    of the server's for the last send.
    """
    steps = context.run(awaitable.__await__)
    # A plain iterator is a valid awaitable too (granian's): it takes no value, no throw.
    step_send: Callable[[Any], Any] = getattr(steps, "send", None) or (lambda _: next(steps))
    step_throw: Callable[[BaseException], Any] | None = getattr(steps, "throw", None)
    advance, value = step_send, None
    while True:
        try:
            yielded = context.run(advance, value)
        except StopIteration as stop:
            return cast("T", stop.value)
        advance = step_send
        try:
            value = yield yielded
        except GeneratorExit:
            close = getattr(steps, "close", None)
            if close is not None:
                context.run(close)
            raise
        except BaseException as exc:  # thrown in by the task (cancellation): throw it on
            if step_throw is None:
                raise
            advance, value = step_throw, exc


class _Operated:
    """What a request and a WebSocket connection share: the app runs in the operation's
    own context, and the operation gets exactly one end or error, whatever the app does
    (raises: `_raised`; returns before its operation ended: `_returned`)."""

    __slots__ = ("_receive", "_send", "context", "op", "scope")
    _receive: Receive
    _send: Send
    context: contextvars.Context
    op: HttpOperation
    scope: Scope

    async def run(self, app: ASGIApp) -> None:
        context = self.context
        try:
            await run_in_context(context, context.run(app, self.scope, self.receive, self.send))
        except BaseException as exc:
            context.run(self._raised, exc)
            raise
        if not self.op.done:
            context.run(self._returned)

    def _raised(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _returned(self) -> None:
        raise NotImplementedError

    async def receive(self) -> Message:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        raise NotImplementedError


class _Request(_Operated):
    """One request: its own context, its wrapped `receive`/`send`, and its operation.

    The app and the hooks run in a copy of the server's context, so nothing they
    set (the current span of an instrument) leaks into the server's. The last
    send runs in another copy, taken before the request began: a server may
    start the next pipelined request inside it (uvicorn does), and that request
    must start from the server's context, not from this one's.
    """

    __slots__ = ("_counts_body", "_server_context")

    def __init__(self, hooks: Hooks, scope: Scope, receive: Receive, send: Send) -> None:
        # Written out in each subclass, not in a shared __init__: one call less per request.
        self.scope = scope
        self._receive = receive
        self._send = send
        self._counts_body = True
        self._server_context = contextvars.copy_context()
        self.context = contextvars.copy_context()
        self.op = self.context.run(self._begin, hooks)
        scope[OPERATION_KEY] = self.op.id

    def _begin(self, hooks: Hooks) -> HttpOperation:
        return begin_scope(hooks, self.scope, self.scope["method"], "http")

    def _raised(self, exc: BaseException) -> None:
        note_route(self.op, self.scope)
        self.op.fail_with(exc)

    def _returned(self) -> None:
        note_route(self.op, self.scope)
        self.op.fail("RuntimeError", "ASGI app returned without completing the response")

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.op.done:
            note_route(self.op, self.scope)
            self.op.fail(
                CLIENT_DISCONNECTED, "client disconnected before the response was complete"
            )
        return message

    async def send(self, message: Message) -> None:
        op = self.op
        kind = message["type"]
        last = False
        if kind == "http.response.start":
            message = self._start_response(message)
        elif kind == "http.response.body":
            last = not message.get("more_body", False)
        try:
            if last:
                server_context = self._server_context
                await run_in_context(server_context, server_context.run(self._send, message))
            else:
                await self._send(message)
        except OSError as exc:
            op.fail_with(exc, client_gone=True)
            raise
        if _dropped_for_a_gone_client(self._send):
            op.fail(CLIENT_DISCONNECTED, "client disconnected before the response was complete")
        elif kind == "http.response.body":
            if self._counts_body:
                op.body_size += len(message.get("body", b""))
            if last:  # a framework that answered an exception with a 5xx has noted it by now
                op.complete(self.scope.get(EXCEPTION_KEY))

    def _start_response(self, message: Message) -> Message:
        op = self.op
        note_route(op, self.scope)  # while routing state is in the scope: routers may undo it
        headers = message.get("headers", ())
        op.respond(message["status"], header_pairs(headers) if op.hooks.response_capture else ())
        self._counts_body = not omits_body(self.scope["method"], message["status"])
        injected = op.inject()
        if not injected:
            return message
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in injected.items()]
        return {**message, "headers": [*headers, *extra]}


def note_route(op: HttpOperation, scope: Scope) -> None:
    """Take the route the framework noted in the scope; the first seen wins (routers may
    undo theirs later)."""
    if op.route is None:
        route = scope.get(ROUTE_KEY)
        if isinstance(route, str):
            op.route = route


def run_websocket(
    hooks: Hooks, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> Awaitable[None]:
    """Run `app` on a `websocket` scope as one operation: both middlewares' connections."""
    return _Connection(hooks, scope, receive, send).run(app)


class _Connection(_Operated):
    """One WebSocket connection: its own context, its wrapped `receive`/`send`, its operation.

    The app and the hooks run in a copy of the server's context, as a request's
    do. Messages are counted once the server took them (a send that raised sent
    nothing); whatever the app or the server passes that is not a well-formed
    message goes on untouched, for the server to judge.
    """

    __slots__ = ("_client_gone",)
    op: WebSocketOperation

    def __init__(self, hooks: Hooks, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._client_gone = False
        self.context = contextvars.copy_context()
        self.op = cast("WebSocketOperation", self.context.run(self._begin, hooks))
        scope[OPERATION_KEY] = self.op.id

    def _begin(self, hooks: Hooks) -> HttpOperation:
        offered = self.scope.get("subprotocols")
        return begin_scope(
            hooks,
            self.scope,
            "GET",  # the handshake's
            "ws",
            operation=WebSocketOperation,
            extra={SUBPROTOCOLS: tuple(map(str, offered))} if offered else None,
        )

    def _raised(self, exc: BaseException) -> None:
        """An error, unless it follows the client's normal close (1000, 1001).

        After the client went away (a failed send, an abnormal close) whatever the
        app raised is `ClientDisconnected`, as for a request.
        """
        op = self.op
        note_route(self.op, self.scope)
        if op.closed_normally_by_client:
            op.end()
        else:
            op.fail_with(exc, client_gone=self._client_gone or op.closed_by == "client")

    def _returned(self) -> None:
        """The app is done, so the connection is: the server closes what the app left open
        (1000 once accepted; a handshake never answered is refused with a 403)."""
        op = self.op
        note_route(self.op, self.scope)
        if op.closed_by is None and not op.status_code:
            if op.accepted:
                op.closed(1000, "server")
            else:
                op.status_code = REJECTED_STATUS
        op.end()

    async def receive(self) -> Message:
        try:
            message = await self._receive()
        except OSError:
            self._client_gone = True
            raise
        try:
            kind = message.get("type")
        except AttributeError:
            return message
        op = self.op
        if kind == "websocket.receive":
            op.received(message)
        elif kind == "websocket.disconnect":
            op.closed(_code(message.get("code"), NO_STATUS_CODE), "client")
        return message

    async def send(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:
            self._client_gone = True
            raise
        try:
            kind = message.get("type")
        except AttributeError:
            return
        op = self.op
        if kind == "websocket.send":
            op.sent(message)
        elif kind == "websocket.accept":
            op.accepted = True
            subprotocol = message.get("subprotocol")
            if isinstance(subprotocol, str):
                op.subprotocol = subprotocol
        elif kind == "websocket.close":
            op.closed(_code(message.get("code"), 1000), "server")
            if not op.accepted and not op.status_code:
                op.status_code = REJECTED_STATUS
        elif kind == "websocket.http.response.start":
            op.status_code = _code(message.get("status"), op.status_code)


def _code(value: object, default: int) -> int:
    """A close code or status as a plain int (wsproto's are `IntEnum`s); `default` for
    a missing or malformed one."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def _dropped_for_a_gone_client(send: Send) -> bool:
    """True when the server's `send` dropped the message because the client is gone.

    The ASGI spec asks servers to raise an `OSError` then; uvicorn returns
    quietly instead, and flags its request cycle (the object `send` is bound to).
    """
    return getattr(getattr(send, "__self__", None), "disconnected", False) is True


PythonTelemetryMiddleware = TelemetryMiddleware
"""The pure-Python middleware: the specification the compiled one is tested against."""
if core is not None:
    # Servers tell an ASGI 3 app by `__call__` being a coroutine function: the compiled
    # class shows the twin's, while calls go to its C implementation.
    core.mark_coroutine_call(core.AsgiMiddleware, PythonTelemetryMiddleware.__call__)
    core.serve_websockets(run_websocket)
    TelemetryMiddleware = core.AsgiMiddleware  # type: ignore[misc]
