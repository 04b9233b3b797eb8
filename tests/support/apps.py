"""The same small app as raw ASGI, raw WSGI and an `http.server` handler.

Servers load `asgi_app` / `wsgi_app` from here; `python -m tests.support.apps`
runs a `ThreadingHTTPServer` with `Handler`. Importing this module attaches
the recording instruments (see `recorder`) when `HOOKTEL_TEST_EVENTS` is set.

Routes, the same on all three:
- `/hello...` (any method): reads the request body, answers `?status=` (200 by
  default) with `HELLO_BODY` written in two pieces, and the headers in
  `HELLO_HEADERS`;
- `/write` (WSGI only): the same answer, part of it through `write()`;
- `/boom`: raises `RuntimeError(BOOM_MESSAGE)` before answering;
- `/stream?gone=...`: answers 200 and writes `CHUNK` every 20 ms, for up to
  10 s or until the client is gone, then does what `gone` says:
  `ignore` (the default): carries on as if nothing happened (ASGI: finishes
  the response; WSGI: streams an iterable, so the server meets the error;
  `http.server`: lets the write error propagate); `return`: stops quietly
  (WSGI and `http.server` write the chunks themselves and catch the error);
  `raise`: raises `RuntimeError(GONE_MESSAGE)` instead. The ASGI app learns
  that the client is gone from `receive()`, as uvicorn drops sends silently;
- `/early-hints` (`http.server` only): a `103 Early Hints` head, then `/hello`;
- `/big` (ASGI only): `BIG_BODY` bytes with `more_body`, then `TAIL` as the last body,
  so that the last send waits for the client to drain the first (a `LAST_SEND` line
  on stderr says it is about to be sent);
- `/slow-close` and `/close-raises` (WSGI only): `/hello`, with a response iterable
  whose `close()` takes `SLOW_CLOSE` seconds, or raises `RuntimeError(CLOSE_MESSAGE)`;
- `/exc-info` (WSGI only): starts a 200, then replaces it by a 500 error page with a
  second `start_response(..., exc_info)`, as PEP 3333 allows before the body.
A request body is read whole, by its Content-Length or as chunks (WSGI too).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import hooktel.httpserver
from hooktel.asgi import TelemetryMiddleware as AsgiTelemetry
from hooktel.wsgi import TelemetryMiddleware as WsgiTelemetry
from tests.support.recorder import LEFT_SET, TAG_HEADER, attach_from_env, served

HELLO_PIECES = (b"hello, ", b"world\n")
HELLO_BODY = b"".join(HELLO_PIECES)
HELLO_HEADERS = (
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(HELLO_BODY))),
    ("X-App-Header", "app-value"),
    ("Set-Cookie", "session=secret-set-cookie"),
)
BOOM_MESSAGE = "app exploded"
GONE_MESSAGE = "client went away"
CHUNK = b"chunk\n"
BIG_BODY = 16 * 1024 * 1024
TAIL = b"tail"
LAST_SEND = "big: last send for"
SLOW_CLOSE = 0.3
CLOSE_MESSAGE = "close exploded"
ERROR_PAGE = b"error page"
STREAM_SECONDS = 10.0
CHUNK_INTERVAL = 0.02

attach_from_env()


def _status(query: str) -> int:
    return int(parse_qs(query).get("status", ["200"])[0])


def _gone(query: str) -> str:
    """What the app does once the client is gone: `ignore`, `return` or `raise`."""
    return parse_qs(query).get("gone", ["ignore"])[0]


def boom() -> None:
    raise RuntimeError(BOOM_MESSAGE)


# ---------------------------------------------------------------- ASGI


async def _lifespan(receive: Any, send: Any) -> None:
    """Startup and shutdown, each completed as it comes: the servers need no flag to skip them."""
    for phase in ("startup", "shutdown"):
        message = await receive()
        assert message["type"] == f"lifespan.{phase}", message
        await send({"type": f"lifespan.{phase}.complete"})


async def raw_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/boom":
        boom()
    if path == "/stream":
        await _asgi_stream(receive, send, _gone(scope["query_string"].decode()))
        return
    if path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": bytes(BIG_BODY), "more_body": True})
        tag = dict(scope["headers"]).get(TAG_HEADER.encode(), b"").decode()
        print(f"{LAST_SEND} {tag}", file=sys.stderr, flush=True)  # a test waits for this
        await send({"type": "http.response.body", "body": TAIL})
        return
    more_body = True
    while more_body:  # read the whole request body
        message = await receive()
        more_body = message.get("more_body", False)
    headers = [(k.lower().encode(), v.encode()) for k, v in HELLO_HEADERS]
    status = _status(scope["query_string"].decode())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for piece in HELLO_PIECES:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _asgi_stream(receive: Any, send: Any, gone_then: str) -> None:
    """Stream until the client is gone; uvicorn drops sends silently, so watch `receive()`."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.ensure_future(watch())
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        deadline = time.monotonic() + STREAM_SECONDS
        while not gone.is_set() and time.monotonic() < deadline:
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(gone.wait(), CHUNK_INTERVAL)
        if gone.is_set() and gone_then == "raise":
            raise RuntimeError(GONE_MESSAGE)
        if not gone.is_set() or gone_then == "ignore":
            await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()


def _asgi_served(app: Any) -> Any:
    """Outermost layer: marks each request served once the middleware is done with it."""

    async def marked(scope: dict[str, Any], receive: Any, send: Any) -> None:
        inherited = LEFT_SET.get(None)
        try:
            await app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                tag = dict(scope["headers"]).get(TAG_HEADER.encode(), b"").decode()
                served(tag or None, inherited)

    return marked


asgi_app = _asgi_served(AsgiTelemetry(raw_asgi_app))


# ---------------------------------------------------------------- WSGI


def raw_wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ.get("PATH_INFO", "")
    if path == "/boom":
        boom()
    if path == "/stream":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        gone_then = _gone(environ.get("QUERY_STRING", ""))
        if gone_then == "ignore":
            return _wsgi_stream()
        _wsgi_write_stream(write, gone_then)
        return []
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            boom()
        except RuntimeError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        return [ERROR_PAGE]
    if environ.get("HTTP_TRANSFER_ENCODING") == "chunked":
        environ["wsgi.input"].read()
    else:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or "0"))
    status = _status(environ.get("QUERY_STRING", ""))
    write = start_response(f"{status} {HTTPStatus(status).phrase}", list(HELLO_HEADERS))
    if path == "/write":  # PEP 3333's imperative write(), then the iterable
        write(HELLO_PIECES[0])
        return [HELLO_PIECES[1]]
    if path in ("/slow-close", "/close-raises"):
        return _Closing(list(HELLO_PIECES), raises=path == "/close-raises")
    return list(HELLO_PIECES)


class _Closing:
    """A response iterable whose `close()` is slow, or raises."""

    def __init__(self, pieces: list[bytes], raises: bool) -> None:
        self._pieces = pieces
        self._raises = raises

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._pieces)

    def close(self) -> None:
        if self._raises:
            raise RuntimeError(CLOSE_MESSAGE)
        time.sleep(SLOW_CLOSE)


def _wsgi_stream() -> Iterator[bytes]:
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        yield CHUNK
        time.sleep(CHUNK_INTERVAL)


def _wsgi_write_stream(write: Any, gone_then: str) -> None:
    """Stream through `write()`; when the client is gone, return or raise, as apps do."""
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        try:
            write(CHUNK)
        except OSError as exc:
            if gone_then == "raise":
                raise RuntimeError(GONE_MESSAGE) from exc
            return
        time.sleep(CHUNK_INTERVAL)


class _WsgiServed:
    """Outermost layer: marks the request served once the server closed the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        tag = environ.get("HTTP_" + TAG_HEADER.upper().replace("-", "_"))
        try:
            response = self.app(environ, start_response)
        except BaseException:
            served(tag)
            raise
        return _ClosedThenServed(response, tag)


class _ClosedThenServed:
    def __init__(self, response: Any, tag: str | None) -> None:
        self._response = response
        self._tag = tag

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            served(self._tag)


wsgi_app = _WsgiServed(WsgiTelemetry(raw_wsgi_app))


# ---------------------------------------------------------------- http.server


class Handler(BaseHTTPRequestHandler):
    """A plain `BaseHTTPRequestHandler` subclass: no hooktel code in it."""

    protocol_version = "HTTP/1.1"  # keep-alive and `Expect: 100-continue`, as servers do
    timeout = 10  # a stuck connection must not hold up the server's shutdown

    def handle_one_request(self) -> None:
        """Marks the request served once the (instrumented) base class is done with it."""
        self.headers = None  # type: ignore[assignment]  # a kept-alive connection's last request
        try:
            super().handle_one_request()
        finally:
            if self.headers is not None:
                served(self.headers.get(TAG_HEADER))

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/boom":
            boom()
        if path == "/stream":
            self._stream(_gone(query))
            return
        if path == "/early-hints":
            self.send_response(103)
            self.send_header("Link", "</style.css>; rel=preload")
            self.end_headers()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(_status(query))
        for name, value in HELLO_HEADERS:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":  # http.server sends what the handler writes, even then
            for piece in HELLO_PIECES:
                self.wfile.write(piece)

    do_POST = do_GET
    do_PURGE = do_GET
    do_HEAD = do_GET

    def _stream(self, gone_then: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline:
            try:
                self.wfile.write(CHUNK)
            except OSError as exc:
                if gone_then == "ignore":
                    raise
                if gone_then == "raise":
                    raise RuntimeError(GONE_MESSAGE) from exc
                return
            time.sleep(CHUNK_INTERVAL)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight: every op completes


class _WsgirefServer(ThreadingMixIn, WSGIServer):
    daemon_threads = False


class _QuietWsgirefHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


def serve_http(interface: str = "http.server") -> None:
    """Run `Handler` (or, for `wsgiref`, `wsgi_app` on wsgiref's server) on a free port of
    127.0.0.1 until SIGTERM; say the port on stderr."""
    server: ThreadingHTTPServer | _WsgirefServer
    if interface == "wsgiref":  # the standard library's WSGI server sets no REMOTE_PORT
        server = _WsgirefServer(("127.0.0.1", 0), _QuietWsgirefHandler)
        server.set_app(wsgi_app)
    else:
        hooktel.httpserver.instrument()
        server = _Server(("127.0.0.1", 0), Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    serve_http(*sys.argv[1:])
