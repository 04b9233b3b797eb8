"""A million requests through the compiled hook points leave no memory behind.

Each request is driven in process (no server, as the benchmark's in-process step
does) with one instrument attached, so every object the core makes per request
(the operation, its attribute dicts, the request, its steps, the body wrapper) is
made and must be freed. Measured after a warm-up: the process's RSS, the Python
heap as tracemalloc sees it, and, where the interpreter counts them (a debug
build), the total of references.
"""

from __future__ import annotations

import gc
import io
import os
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import hooktel
import hooktel.asgi
import hooktel.wsgi

SANITIZED = bool(os.environ.get("HOOKTEL_EXPECT_SANITIZED"))
REQUESTS = 200_000 if SANITIZED else 1_000_000
TRACED = 100_000  # tracemalloc slows every allocation down: fewer requests, same verdict


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def _asgi_request() -> Callable[[], None]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    middleware = hooktel.asgi.TelemetryMiddleware(app)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/a?b",
        "query_string": b"q=1",
        "headers": [
            (b"host", b"example.com"),
            (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            (b"x-capture", b"v"),
        ],
        "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.1", 5000),
        "http_version": "1.1",
    }

    def call() -> None:
        step = middleware(dict(scope), receive, send)
        try:
            step.send(None)
        except StopIteration:
            return
        raise AssertionError("the app suspended")

    return call


def _wsgi_request() -> Callable[[], None]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    middleware = hooktel.wsgi.TelemetryMiddleware(app)
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/a?b",
        "QUERY_STRING": "b",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "5000",
        "HTTP_HOST": "example.com",
        "CONTENT_LENGTH": "3",
        "HTTP_X_CAPTURE": "v",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def call() -> None:
        request = dict(environ, **{"wsgi.input": io.BytesIO(b"abc")})
        response = middleware(request, start_response)
        for _chunk in response:
            pass
        response.close()

    return call


@pytest.fixture
def instrument() -> Any:
    def record(op_id: int, attrs: dict[str, Any]) -> None:
        pass

    with hooktel.attach(
        hooktel.Instrument(
            kind="http",
            name="no-growth",
            version="1",
            on_operation_start=record,
            on_operation_inject=lambda op_id: {"x-op": str(op_id)},
            on_operation_end=record,
            on_operation_error=record,
            capture_request_headers=("x-capture",),
            capture_response_headers=("content-type",),
        )
    ) as ref:
        yield ref


@pytest.mark.parametrize("make", [_asgi_request, _wsgi_request], ids=["asgi", "wsgi"])
def test_a_million_requests_leave_nothing_behind(make: Any, instrument: Any) -> None:
    call = make()
    for _ in range(20_000):  # warm-up: free lists and caches reach their steady size
        call()
    gc.collect()
    rss_before = _rss_kib()
    refs_before = getattr(sys, "gettotalrefcount", lambda: 0)()
    for _ in range(REQUESTS):
        call()
    gc.collect()
    rss_growth = _rss_kib() - rss_before
    refs_growth = getattr(sys, "gettotalrefcount", lambda: 0)() - refs_before
    if not SANITIZED:  # ASan holds freed memory back (its quarantine): RSS says nothing there
        assert rss_growth < 1024, f"RSS grew by {rss_growth} KiB over {REQUESTS} requests"
    assert abs(refs_growth) < 1000, f"{refs_growth} references more over {REQUESTS} requests"

    tracemalloc.start()
    try:
        for _ in range(2_000):
            call()
        gc.collect()
        heap_before, _ = tracemalloc.get_traced_memory()
        for _ in range(TRACED):
            call()
        gc.collect()
        heap_growth = tracemalloc.get_traced_memory()[0] - heap_before
    finally:
        tracemalloc.stop()
    assert heap_growth < 16 * 1024, f"the heap grew by {heap_growth} B over {TRACED} requests"
