"""The apps under test, and the factory that server processes load.

Each app has a kind (`asgi` and `wsgi` for the raw apps, `starlette`,
`flask`, `httpserver`): variants are applied per kind, servers and drivers
per interface. A server process learns what to run from two environment
variables, read by `build()`: `HOOKTEL_BENCH_APP` (a key of `APPS`) and
`HOOKTEL_BENCH_VARIANT` (a key of `variants.VARIANTS`). uvicorn loads `benchmarks.apps:build` with
`--factory`, gunicorn loads `benchmarks.apps:build()`, and `python -m
benchmarks.apps --port N` serves an `http.server` app on `ThreadingHTTPServer`.
"""

from __future__ import annotations

import argparse
import atexit
import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from .variants import VARIANTS

Interface = Literal["asgi", "wsgi", "httpserver"]
Kind = Literal["asgi", "wsgi", "httpserver", "starlette", "flask"]
INTERFACES: dict[Kind, Interface] = {
    "asgi": "asgi",
    "starlette": "asgi",
    "wsgi": "wsgi",
    "flask": "wsgi",
    "httpserver": "httpserver",
}

APP_ENV = "HOOKTEL_BENCH_APP"
VARIANT_ENV = "HOOKTEL_BENCH_VARIANT"
BODY = b"hello"


async def answer_lifespan(receive: Any, send: Any) -> None:
    """Complete the ASGI lifespan protocol, so servers need no flag to skip it."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def raw_asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI 3 app: 200, 5 bytes. Handles lifespan so servers need no flag."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def raw_wsgi_hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The smallest PEP 3333 app: 200, 5 bytes."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [BODY]


class HelloHandler(BaseHTTPRequestHandler):
    """An `http.server` hello handler: HTTP/1.1 keep-alive, no per-request log line.

    TCP_NODELAY is on: the header and body writes are separate packets, and with
    Nagle's algorithm each keep-alive response waits ~40 ms for a delayed ACK.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def hello_handler() -> type[HelloHandler]:
    return HelloHandler


def starlette_hello() -> Any:
    """A Starlette app with one route, `GET /` -> `hello` (an async endpoint: no thread pool)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


def flask_hello() -> Any:
    """A Flask app with one route, `GET /` -> `hello`."""
    from flask import Flask, Response

    app = Flask("hooktel_bench")

    @app.get("/")
    def hello() -> Response:
        return Response(BODY, mimetype="text/plain")

    return app


@dataclass(frozen=True)
class AppSpec:
    """An app: its kind and how to make it (a fresh object per call).

    `driver_options` go to the in-process driver (`drivers.DRIVERS`); an
    `inprocess_only` app has no server and is only timed in-process.
    """

    kind: Kind
    factory: Callable[[], Any]
    description: str
    driver_options: Mapping[str, Any] = field(default_factory=dict)
    inprocess_only: bool = False

    @property
    def interface(self) -> Interface:
        return INTERFACES[self.kind]


APPS: dict[str, AppSpec] = {
    "raw-asgi": AppSpec("asgi", lambda: raw_asgi_hello, "raw ASGI 3 hello app"),
    "raw-wsgi": AppSpec("wsgi", lambda: raw_wsgi_hello, "raw WSGI hello app"),
    "starlette": AppSpec("starlette", starlette_hello, "Starlette app, one route"),
    "flask": AppSpec("flask", flask_hello, "Flask app, one route"),
    "http-hello": AppSpec("httpserver", hello_handler, "BaseHTTPRequestHandler hello"),
    # The cheapest pass through handle_one_request(): the client closed the
    # connection (EOF, as every keep-alive connection ends). A hello request
    # costs ~20 us, which hides the hook point's fixed cost in timing noise.
    "http-eof": AppSpec(
        "httpserver",
        hello_handler,
        "handle_one_request() reading EOF: the hook point's fixed cost",
        driver_options={"request": b""},
        inprocess_only=True,
    ),
}


def make(app_name: str, variant_name: str, stack: ExitStack) -> Any:
    """The app `app_name` with variant `variant_name` applied; undo registered on `stack`."""
    spec = APPS[app_name]
    variant = VARIANTS[variant_name]
    if variant.before_app is not None:
        variant.before_app()
    return variant.apply(spec.kind, spec.factory(), stack)


_process_stack = ExitStack()  # a server process keeps its variant until it exits
atexit.register(_process_stack.close)  # and flushes its spans then


def build() -> Any:
    """Factory for server processes: the app and variant named by the environment."""
    return make(os.environ[APP_ENV], os.environ[VARIANT_ENV], _process_stack)


class _BenchHTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # wrk opens all its connections at once; the default is 5


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve an http.server bench app")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    handler = build()
    with _BenchHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
