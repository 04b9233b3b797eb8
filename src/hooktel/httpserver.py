"""Hook points in the standard library's `http.server`.

`instrument()` replaces `BaseHTTPRequestHandler.handle_one_request` with a
version that checks the registry and, only when an HTTP instrument is
attached, shadows a few handler methods on that one handler instance for the
duration of the request. Every subclass (`SimpleHTTPRequestHandler`, user
handlers) on `HTTPServer` or `ThreadingHTTPServer` reports with no change.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._core import core
from ._http.headers import unfold
from ._http.operation import CLIENT_DISCONNECTED, HttpOperation, RequestBody
from ._http.request import begin_http
from ._registry.hooks import HOOKS_BY_KIND, HTTP_KIND, Hooks

# The attributes and the lifecycle come from the native core where it runs.
_begin_http = begin_http if core is None else core.begin_http
_original: Callable[[BaseHTTPRequestHandler], None] | None = None


def instrument() -> None:
    """Install the hook points; calling it again does nothing."""
    global _original  # noqa: PLW0603 - the one piece of module state this patch needs
    if _original is None:
        _original = BaseHTTPRequestHandler.handle_one_request
        BaseHTTPRequestHandler.handle_one_request = _handle_one_request  # type: ignore[method-assign,assignment]


def uninstrument() -> None:
    """Restore `http.server` as it was; calling it again does nothing."""
    global _original  # noqa: PLW0603
    if _original is not None:
        BaseHTTPRequestHandler.handle_one_request = _original  # type: ignore[method-assign,assignment]
        _original = None


def _handle_one_request(handler: BaseHTTPRequestHandler) -> None:
    original = _original or type(handler).handle_one_request
    hooks = HOOKS_BY_KIND[HTTP_KIND]
    if hooks is None:
        original(handler)
    else:
        _Request(handler, hooks).run(original)


def _address(address: Any) -> tuple[str, int] | None:
    """(host, port) of an AF_INET/AF_INET6 socket address; None for anything else."""
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


class _CountingWriter:
    """Stands in for `handler.wfile` to count body bytes and notice a vanished client."""

    def __init__(self, wfile: Any, request: _Request) -> None:
        self._wfile = wfile
        self._request = request

    def write(self, data: bytes) -> int:
        try:
            written: int = self._wfile.write(data)
        except OSError:
            self._request.client_gone = True
            raise
        if self._request.headers_sent and self._request.op is not None:
            self._request.op.body_size += len(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wfile, name)


_SHADOWED = ("end_headers", "log_error", "parse_request", "send_header", "send_response_only")


class _Request:
    """One request on one handler: the methods shadowed for it, and its operation."""

    __slots__ = (
        "client_gone",
        "handler",
        "headers_sent",
        "hooks",
        "op",
        "response_headers",
        "status",
    )

    def __init__(self, handler: BaseHTTPRequestHandler, hooks: Hooks) -> None:
        self.handler = handler
        self.hooks = hooks
        self.op: HttpOperation | None = None
        self.status = 0
        self.headers_sent = False
        self.client_gone = False
        self.response_headers: list[tuple[str, str]] = []

    def run(self, original: Callable[[BaseHTTPRequestHandler], None]) -> None:
        handler = self.handler
        shadows = handler.__dict__
        for name in _SHADOWED:
            shadows[name] = getattr(self, name)
        wfile, rfile = handler.wfile, handler.rfile
        handler.wfile = _CountingWriter(wfile, self)  # type: ignore[assignment]
        try:
            original(handler)
        except BaseException as exc:
            if self.op is not None:
                self.op.fail_with(exc, client_gone=self.client_gone)
            raise
        finally:
            for name in _SHADOWED:
                shadows.pop(name, None)
            handler.wfile, handler.rfile = wfile, rfile
        if self.op is not None:
            if self.client_gone:  # the handler swallowed the error of writing to a gone client
                self.op.fail(CLIENT_DISCONNECTED, "client disconnected mid-response")
            else:
                self.op.end()
        elif self.status:  # answered (400, 414, ...) before the request could be parsed
            self.op = self._begin()
            self.op.respond(self.status, ())
            self.op.fail("ParseError", f"malformed request, answered {self.status}")

    def _begin(self) -> HttpOperation:
        handler = self.handler
        target = handler.path if isinstance(getattr(handler, "path", None), str) else ""
        path, _, query = target.partition("?")
        headers = getattr(handler, "headers", None)
        return _begin_http(
            self.hooks,
            method=getattr(handler, "command", None) or "",
            scheme="https" if hasattr(handler.connection, "getpeercert") else "http",
            path=path,
            query=query,
            # http.server accepts obsolete line folding: a folded value arrives with CRLF in it.
            headers=[(k.lower(), unfold(v)) for k, v in headers.items()] if headers else [],
            server=_address(handler.server.server_address),
            client=_address(handler.client_address),
            protocol=str(getattr(handler, "request_version", "")).removeprefix("HTTP/"),
        )

    def parse_request(self) -> bool:
        handler = self.handler
        parsed = type(handler).parse_request(handler)
        if parsed:
            self.op = self._begin()
            handler.rfile = RequestBody(handler.rfile, self.op)  # type: ignore[assignment]
        return parsed

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self.status = int(code) if isinstance(code, int) else 0  # an HTTPStatus is reported as int
        self.response_headers = []  # the final head starts afresh after an interim one
        if self.op is not None:
            self.op.respond(self.status, ())
        type(self.handler).send_response_only(self.handler, code, message)

    def send_header(self, keyword: str, value: str) -> None:
        if self.hooks.response_capture:
            self.response_headers.append((keyword.lower(), unfold(str(value))))
        type(self.handler).send_header(self.handler, keyword, value)

    def end_headers(self) -> None:
        handler, op = self.handler, self.op
        # An interim head (100 Continue, 103 Early Hints) is not the response's: the
        # injected headers, and the body bytes, belong with the final head to come.
        final = not 100 <= self.status < 200
        if op is not None and final:
            for name, value in op.inject().items():
                type(handler).send_header(handler, name, value)
            if self.response_headers:
                op.respond(self.status, self.response_headers)
        type(handler).end_headers(handler)
        if final:
            self.headers_sent = True

    def log_error(self, format: str, *args: Any) -> None:
        # handle_one_request() swallows a timed-out read or write and only logs it.
        if self.op is not None and format.startswith("Request timed out"):
            self.op.fail("TimeoutError", format % args)
        type(self.handler).log_error(self.handler, format, *args)


__all__ = ["instrument", "uninstrument"]
