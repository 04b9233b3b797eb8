"""Requests through the compiled hook points leave no memory behind.

Each request is driven in process (no server, as the benchmark's in-process step
does) with one instrument attached, so every object the core makes per request
(the operation, its attribute dicts, the request, its steps, the body wrapper) is
made and must be freed. After a warm-up, memory is read after each of several windows
of requests: the Python heap as tracemalloc sees it (the extensions allocate through
Python's allocators), the bytes in use from C's malloc as glibc counts them (a leak
below Python's allocators), and, where the interpreter counts them (a debug build), the
total of references. RSS is no judge: a machine loaded by other work moves it by a
megabyte or so either way, and a leak can hide in freed memory the process still holds.
Free lists and caches settle at their own pace; a leak instead grows memory in every
window, in proportion to the requests. So a verdict of leak needs both: growth in every
window, and more growth overall than a per-request slope allows. Two tests leak on
purpose, to show that this still fails on a real leak.
"""

from __future__ import annotations

import ctypes
import gc
import io
import os
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import hooktel
import hooktel.asgi
import hooktel.wsgi

SANITIZED = bool(os.environ.get("HOOKTEL_EXPECT_SANITIZED"))
WARM_UP = 20_000  # free lists and caches reach their steady size
WINDOWS = 5
UNTRACED_WINDOW = 100_000
TRACED_WINDOW = 20_000  # tracemalloc slows every allocation down: fewer requests, same verdict
# Per-request slopes a leak exceeds: a leaked object costs 16 bytes at least, a leaked
# reference one; noise stays far below these.
HEAP_SLOPE = 1.0
MALLOC_SLOPE = 8.0
REFS_SLOPE = 0.01


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


_LIBC = ctypes.CDLL(None)
_mallinfo2 = getattr(_LIBC, "mallinfo2", None)  # glibc 2.33 and newer
if _mallinfo2 is not None:
    _mallinfo2.restype = _MallInfo2
# ASan's allocator stands in for glibc's, which then counts nothing.
MALLOC_COUNTED = _mallinfo2 is not None and not SANITIZED


def _malloced_bytes() -> int:
    """Bytes in use from malloc: in small chunks (uordblks) and in mmapped ones (hblkhd)."""
    assert _mallinfo2 is not None
    info = _mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _growth(call: Callable[[], None], measure: Callable[[], int], per_window: int) -> list[int]:
    """How much `measure` grew over each of WINDOWS windows of `per_window` calls."""
    growths = []
    before = measure()
    for _ in range(WINDOWS):
        for _ in range(per_window):
            call()
        gc.collect()
        after = measure()
        growths.append(after - before)
        before = after
    return growths


def _traced_growth(call: Callable[[], None]) -> list[int]:
    tracemalloc.start()
    try:
        return _growth(call, lambda: tracemalloc.get_traced_memory()[0], TRACED_WINDOW)
    finally:
        tracemalloc.stop()


def _leaks(growths: list[int], per_window: int, slope: float) -> bool:
    """A leak grows memory in every window, by more than `slope` per request overall."""
    return min(growths) > 0 and sum(growths) > slope * per_window * len(growths)


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


@contextmanager
def _instrument(on_operation_end: Callable[[int, dict[str, Any]], None]) -> Iterator[None]:
    def record(op_id: int, attrs: dict[str, Any]) -> None:
        pass

    with hooktel.attach(
        hooktel.Instrument(
            kind="http",
            name="no-growth",
            version="1",
            on_operation_start=record,
            on_operation_inject=lambda op_id: {"x-op": str(op_id)},
            on_operation_end=on_operation_end,
            on_operation_error=record,
            capture_request_headers=("x-capture",),
            capture_response_headers=("content-type",),
        )
    ):
        yield


def _warmed_up(make: Callable[[], Callable[[], None]]) -> Callable[[], None]:
    call = make()
    for _ in range(WARM_UP):
        call()
    gc.collect()
    return call


@pytest.mark.parametrize("make", [_asgi_request, _wsgi_request], ids=["asgi", "wsgi"])
def test_requests_leave_nothing_behind(make: Callable[[], Callable[[], None]]) -> None:
    with _instrument(lambda op_id, attrs: None):
        call = _warmed_up(make)
        heap = _traced_growth(call)
        assert not _leaks(heap, TRACED_WINDOW, HEAP_SLOPE), (
            f"the heap grew in every window of {TRACED_WINDOW} requests: {heap} B"
        )
        if hasattr(sys, "gettotalrefcount"):  # a debug build
            refs = _growth(call, sys.gettotalrefcount, UNTRACED_WINDOW)
            assert not _leaks(refs, UNTRACED_WINDOW, REFS_SLOPE), (
                f"references grew in every window of {UNTRACED_WINDOW} requests: {refs}"
            )
        if MALLOC_COUNTED:
            malloced = _growth(call, _malloced_bytes, UNTRACED_WINDOW)
            assert not _leaks(malloced, UNTRACED_WINDOW, MALLOC_SLOPE), (
                f"malloc's bytes in use grew in every window of {UNTRACED_WINDOW} requests:"
                f" {malloced} B"
            )


def test_a_leaked_int_per_request_is_caught() -> None:
    """An instrument that keeps one small object per request: the heap judge fails it."""
    kept: list[int] = []
    with _instrument(lambda op_id, attrs: kept.append(op_id)):
        heap = _traced_growth(_warmed_up(_asgi_request))
    assert _leaks(heap, TRACED_WINDOW, HEAP_SLOPE), heap


@pytest.mark.skipif(not MALLOC_COUNTED, reason="no glibc mallinfo2, or ASan's allocator")
def test_a_leaked_malloc_block_per_request_is_caught() -> None:
    """An instrument that leaks 64 bytes of C memory per request, out of tracemalloc's
    sight, the way a C extension calling malloc would: the malloc judge fails it."""
    malloc = _LIBC.malloc
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    with _instrument(lambda op_id, attrs: malloc(64)):
        malloced = _growth(_warmed_up(_asgi_request), _malloced_bytes, UNTRACED_WINDOW)
    assert _leaks(malloced, UNTRACED_WINDOW, MALLOC_SLOPE), malloced
