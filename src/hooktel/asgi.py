"""Hook points for any ASGI 3 application (uvicorn, hypercorn, granian, ...).

Wrap the app: `app = TelemetryMiddleware(app)`. With nothing attached the
middleware checks the registry once and awaits the app as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._http import (
    CLIENT_DISCONNECTED,
    EXCEPTION_KEY,
    OPERATION_KEY,
    ROUTE_KEY,
    begin_http,
    header_pairs,
    omits_body,
)
from ._registry import HOOKS_BY_KIND, Hooks
from .frameworks import install_notes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HTTP = 1  # InstrumentKind.HTTP, as a constant index into HOOKS_BY_KIND

install_notes()  # frameworks tell the route and the exceptions they answer through the scope


class TelemetryMiddleware:
    """Reports each `http` request of the wrapped app to the attached HTTP instruments."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hooks = HOOKS_BY_KIND[_HTTP]
        if hooks is None or scope["type"] != "http" or OPERATION_KEY in scope:
            await self.app(scope, receive, send)
            return
        request = _Request(hooks, scope, receive, send)
        try:
            await self.app(scope, request.receive, request.send)
        except BaseException as exc:
            request.raised(exc)
            raise
        request.returned()


class _Request:
    """One request's wrapped `receive`/`send` and its operation."""

    __slots__ = ("_counts_body", "_receive", "_send", "op", "scope")

    def __init__(self, hooks: Hooks, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._counts_body = True
        server = scope.get("server")
        client = scope.get("client")
        raw_path = scope.get("raw_path")
        self.op = begin_http(
            hooks,
            method=scope["method"],
            scheme=scope.get("scheme", "http"),
            path=raw_path.decode("latin-1") if raw_path else scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=scope["headers"],  # lowercase names as bytes: the scan decodes what it reads
            server=server if server and server[1] is not None else None,  # [host, port]
            client=client or None,
            protocol=scope.get("http_version", ""),
        )
        scope[OPERATION_KEY] = self.op.id

    def raised(self, exc: BaseException) -> None:
        self._note_route()
        self.op.fail_with(exc)

    def returned(self) -> None:
        if not self.op.done:
            self._note_route()
            self.op.fail("RuntimeError", "ASGI app returned without completing the response")

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.op.done:
            self._note_route()
            self.op.fail(
                CLIENT_DISCONNECTED, "client disconnected before the response was complete"
            )
        return message

    async def send(self, message: Message) -> None:
        op = self.op
        kind = message["type"]
        if kind == "http.response.start":
            message = self._start_response(message)
        elif kind == "http.response.body":
            if self._counts_body:
                op.body_size += len(message.get("body", b""))
            if not message.get("more_body", False):
                # End before the last send: the server may start the next pipelined
                # request from inside it, and must not inherit this one's context. A
                # framework that answered an exception with a 5xx has noted it by now,
                # and its route was noted when the response started.
                op.complete(self.scope.get(EXCEPTION_KEY))
        try:
            await self._send(message)
        except OSError as exc:
            op.fail_with(exc, client_gone=True)
            raise

    def _start_response(self, message: Message) -> Message:
        op = self.op
        self._note_route()  # while routing state is in the scope: some routers undo it later
        headers = message.get("headers", ())
        op.respond(message["status"], header_pairs(headers) if op.hooks.response_capture else ())
        self._counts_body = not omits_body(self.scope["method"], message["status"])
        injected = op.inject()
        if not injected:
            return message
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in injected.items()]
        return {**message, "headers": [*headers, *extra]}

    def _note_route(self) -> None:
        # The first route seen wins: routers may undo theirs later.
        if self.op.route is None:
            route = self.scope.get(ROUTE_KEY)
            if isinstance(route, str):
                self.op.route = route
