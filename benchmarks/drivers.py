"""Drive an app in-process, one request per call, with no server and no event loop.

Each driver turns an app (as `variants.Variant.apply` returns it) into a
zero-argument `call()` that serves one `GET /` the way the real server
would: an ASGI coroutine is run with `coro.send(None)` (the hello app never
suspends), a WSGI response is iterated and closed, an `http.server` handler
reads the request from memory and writes the response to memory. Like a real
server, each request gets its own scope/environ (a shallow copy: middlewares
may mark it), so bare and instrumented calls pay the same copy.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

Call = Callable[[], None]

SERVER = ("127.0.0.1", 8000)
CLIENT = ("127.0.0.1", 50000)
HOST_HEADER = "127.0.0.1:8000"  # wrk sends Host and nothing else


def asgi_call(app: Any) -> Call:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": SERVER,
        "client": CLIENT,
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"host", HOST_HEADER.encode())],
        "state": {},
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        pass

    def call() -> None:
        coro = app(dict(scope), receive, send)
        try:
            coro.send(None)
        except StopIteration:
            return
        coro.close()
        raise RuntimeError("the app suspended: it cannot be driven without an event loop")

    return call


def wsgi_call(app: Any) -> Call:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "RAW_URI": "/",
        "SERVER_NAME": SERVER[0],
        "SERVER_PORT": str(SERVER[1]),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": CLIENT[0],
        "REMOTE_PORT": str(CLIENT[1]),
        "HTTP_HOST": HOST_HEADER,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def write(data: bytes) -> None:
        pass

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return write

    def call() -> None:
        result = app(dict(environ), start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return call


HELLO_REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST_HEADER}\r\n\r\n".encode()


def httpserver_call(handler_class: Any, request: bytes = HELLO_REQUEST) -> Call:
    """`handle_one_request()` on a handler whose socket files are in memory."""
    rfile = io.BytesIO(request)
    wfile = io.BytesIO()
    handler = handler_class.__new__(handler_class)  # skip __init__: it would serve a socket
    handler.rfile = rfile
    handler.wfile = wfile
    handler.client_address = CLIENT
    handler.server = SimpleNamespace(server_address=SERVER)
    handler.connection = handler.request = SimpleNamespace()
    handler.close_connection = True

    def call() -> None:
        rfile.seek(0)
        wfile.seek(0)
        wfile.truncate()
        handler.handle_one_request()

    return call


DRIVERS: dict[str, Callable[..., Call]] = {  # (app, **AppSpec.driver_options) -> call
    "asgi": asgi_call,
    "wsgi": wsgi_call,
    "httpserver": httpserver_call,
}
