"""Servers in threads of the test process, traced into one in-memory exporter.

For the tests that look at many spans at once (a chain of services, many
concurrent requests, pipelining), where one process and one exporter make the
whole trace visible without shipping spans between processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hooktel.otel import HttpInstrumentation

FAST_PATH_ENV = "HOOKTEL_OTEL_FAST_PATH"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)
    return result


@contextlib.contextmanager
def traced(fast_path: str, **options: Any) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """`HttpInstrumentation` on a fresh provider with an in-memory exporter, for a block."""
    previous = os.environ.get(FAST_PATH_ENV)
    os.environ[FAST_PATH_ENV] = fast_path
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()  # a singleton: whatever instrumented it before lets go
    instrumentation.instrument(tracer_provider=provider, **options)
    try:
        yield provider, exporter
    finally:
        instrumentation.uninstrument()
        provider.shutdown()
        if previous is None:
            os.environ.pop(FAST_PATH_ENV, None)
        else:
            os.environ[FAST_PATH_ENV] = previous


@contextlib.contextmanager
def uvicorn_thread(app: Any, **config: Any) -> Iterator[int]:
    """Serve `app` with uvicorn in a thread on a free 127.0.0.1 port; yield the port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn to start")
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def httpserver_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` with a `ThreadingHTTPServer` on a free 127.0.0.1 port; yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
