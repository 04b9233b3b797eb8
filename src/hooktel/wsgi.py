"""Hook points for any PEP 3333 application (gunicorn, waitress, uWSGI, ...).

Wrap the app: `app = TelemetryMiddleware(app)`. The operation ends when the
server closes the response iterable, which PEP 3333 guarantees it does once
the last byte is written (or the client is gone), not when the app returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ._core import core
from ._http.headers import HeaderCapture
from ._http.operation import CLIENT_DISCONNECTED, RequestBody
from ._http.request import (
    CGI_SCANNED_KEYS,
    EXCEPTION_KEY,
    OPERATION_KEY,
    ROUTE_KEY,
    begin_http,
    decimal,
    header_pairs,
    omits_body,
)
from ._registry.hooks import HOOKS_BY_KIND, HTTP_KIND, Hooks
from .frameworks import install_notes

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Environ = dict[str, Any]
Write = Callable[[bytes], object]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


install_notes()  # frameworks tell the route and the exceptions they answer through the environ


class TelemetryMiddleware:
    """Reports each request of the wrapped app to the attached HTTP instruments."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        hooks = HOOKS_BY_KIND[HTTP_KIND]
        if hooks is None or OPERATION_KEY in environ:
            return self.app(environ, start_response)
        return _Request(hooks, environ, start_response).run(self.app)


def _environ_headers(environ: Environ, capture: HeaderCapture | None) -> list[tuple[str, str]]:
    """The request headers hooktel reads: looked up by key, not by a pass over the environ."""
    wanted = CGI_SCANNED_KEYS if capture is None else CGI_SCANNED_KEYS + capture.cgi_keys
    pairs = []
    for key, name in wanted:
        value = environ.get(key)
        # A header sent empty is still a header; an empty CONTENT_TYPE or
        # CONTENT_LENGTH is how CGI says it was not sent.
        if value or (value is not None and key.startswith("HTTP_")):
            pairs.append((name, value))
    return pairs


def _target(environ: Environ) -> str:
    """The request-target as sent, without its query (gunicorn's RAW_URI, waitress' and
    uWSGI's REQUEST_URI), in any of its forms; else the path the server decoded."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        return raw.partition("?")[0]
    return str(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"


def _server(environ: Environ) -> tuple[str, int] | None:
    address, port = environ.get("SERVER_NAME"), decimal(str(environ.get("SERVER_PORT", "")))
    return (address, port) if address and port is not None else None


def _client(environ: Environ) -> tuple[str, int | None] | None:
    """The peer; CGI makes REMOTE_PORT optional (wsgiref sets only REMOTE_ADDR)."""
    address = environ.get("REMOTE_ADDR")
    return (address, decimal(str(environ.get("REMOTE_PORT", "")))) if address else None


def _has_body(environ: Environ) -> bool:
    return bool(environ.get("HTTP_TRANSFER_ENCODING")) or environ.get("CONTENT_LENGTH") not in (
        None,
        "",
        "0",
    )


class _Request:
    """One request's wrapped `start_response`, `write` and response iterable."""

    __slots__ = ("_injected", "_start_response", "_write", "counts_body", "environ", "op")

    def __init__(self, hooks: Hooks, environ: Environ, start_response: StartResponse) -> None:
        self.environ = environ
        self._start_response = start_response
        self._write: Write | None = None
        self._injected: list[tuple[str, str]] | None = None
        self.counts_body = True
        query = environ.get("QUERY_STRING", "")
        self.op = begin_http(
            hooks,
            method=environ.get("REQUEST_METHOD", "GET"),
            scheme=environ.get("wsgi.url_scheme", "http"),
            path=_target(environ),
            query=query,
            headers=_environ_headers(environ, hooks.request_capture),
            server=_server(environ),
            client=_client(environ),
            protocol=environ.get("SERVER_PROTOCOL", "").removeprefix("HTTP/"),
        )
        environ[OPERATION_KEY] = self.op.id
        if _has_body(environ) and "wsgi.input" in environ:
            environ["wsgi.input"] = RequestBody(environ["wsgi.input"], self.op)

    def run(self, app: WSGIApp) -> Iterable[bytes]:
        try:
            return _Response(app(self.environ, self.start_response), self)
        except BaseException as exc:
            self.note_route()
            self.op.fail_with(exc)
            raise

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Write:
        op = self.op
        code = decimal(status[:3]) or 0
        op.respond(code, header_pairs(headers) if op.hooks.response_capture else ())
        self.counts_body = not omits_body(self.environ.get("REQUEST_METHOD", "GET"), code)
        if self._injected is None:  # a second call (with exc_info) reuses the first answer
            self._injected = list(op.inject().items())
        if self._injected:
            headers = [*headers, *self._injected]
        if exc_info is None:
            self._write = self._start_response(status, headers)
        else:
            self._write = self._start_response(status, headers, exc_info)
        return self.write

    def write(self, data: bytes) -> None:
        assert self._write is not None, "write() called before start_response()"
        try:
            self._write(data)
        except OSError as exc:
            self.op.fail_with(exc, client_gone=True)
            raise
        if self.counts_body:
            self.op.body_size += len(data)

    def note_route(self) -> None:
        route = self.environ.get(ROUTE_KEY)
        if isinstance(route, str):
            self.op.route = route


class _Response:
    """Wraps the app's iterable: counts bytes, and reports the end from `close()`."""

    __slots__ = ("_exhausted", "_iterable", "_iterator", "_request")

    def __init__(self, iterable: Iterable[bytes], request: _Request) -> None:
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._request = request
        self._exhausted = False

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._iterable)
        return self

    def __next__(self) -> bytes:
        assert self._iterator is not None
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._exhausted = True
            raise
        except BaseException as exc:
            self._request.note_route()
            self._request.op.fail_with(exc)
            raise
        if self._request.counts_body:
            self._request.op.body_size += len(chunk)
        return chunk

    def close(self) -> None:
        request, op = self._request, self._request.op
        close = getattr(self._iterable, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as exc:
            request.note_route()
            op.fail_with(exc)
            raise
        finally:
            if not op.done:
                request.note_route()
                if self._exhausted:
                    op.complete(request.environ.get(EXCEPTION_KEY))
                else:
                    op.fail(CLIENT_DISCONNECTED, "response closed before it was fully sent")


PythonTelemetryMiddleware = TelemetryMiddleware
"""The pure-Python middleware: the specification the compiled one is tested against."""
if core is not None:
    TelemetryMiddleware = core.WsgiMiddleware  # type: ignore[misc]
