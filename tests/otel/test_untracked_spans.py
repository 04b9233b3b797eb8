"""Finished request spans, their span contexts and their parents' are out of the garbage
collector's care.

They wait in an export queue long enough to be traversed by older collections; they
cannot be part of a cycle, so the core's `untracked` takes them out of the collector's
sets, and reference counting frees them as before. The Python twin cannot do this.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

import hooktel
from hooktel.asgi import TelemetryMiddleware
from hooktel.otel import HttpInstrumentation
from hooktel.otel.spans.requestspan_py import RequestSpan
from tests.otel.inprocess import FAST_PATH_ENV, uvicorn_thread, wait_until

pytestmark = pytest.mark.skipif(
    not hooktel.NATIVE, reason="only the core can untrack (HOOKTEL_PURE_PYTHON=1)"
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Seen(SpanProcessor):
    """What the processor is handed: whether the collector tracks it, and a weak reference."""

    def __init__(self) -> None:
        self.tracked: list[tuple[bool, ...]] = []
        self.refs: list[weakref.ref[Any]] = []
        self.types: list[type] = []

    def on_end(self, span: Any) -> None:
        parent = span.parent  # a remote parent's context and trace state, made per request
        self.tracked.append(
            (
                gc.is_tracked(span),
                gc.is_tracked(span.context),
                parent is not None and gc.is_tracked(parent),
                parent is not None and gc.is_tracked(parent.trace_state),
            )
        )
        self.refs.append(weakref.ref(span))
        self.types.append(type(span))


class SeenRequestSpans(Seen):
    takes_ended_request_spans = True  # handed the request span itself (see _handover)


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(FAST_PATH_ENV, "1")
    yield


@pytest.mark.parametrize("processor_class", [Seen, SeenRequestSpans])
def test_a_finished_span_and_its_context_are_untracked_and_still_freed(
    fast_path: None, processor_class: type[Seen]
) -> None:
    processor = processor_class()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()
    instrumentation.instrument(tracer_provider=provider)
    try:
        with uvicorn_thread(TelemetryMiddleware(hello)) as port:
            for i in range(20):  # half with a remote parent and its trace state
                headers = {"traceparent": PARENT, "tracestate": "k=v"} if i % 2 else {}
                assert httpx.get(f"http://127.0.0.1:{port}/", headers=headers).text == "ok"
            wait_until(lambda: len(processor.tracked) == 20, "20 spans ended")
    finally:
        instrumentation.uninstrument()
    assert processor.tracked == [(False, False, False, False)] * 20
    assert all(issubclass(t, RequestSpan) for t in processor.types) == (
        processor_class is SeenRequestSpans
    )
    gc.disable()  # what frees them is reference counting
    try:
        assert [ref() for ref in processor.refs] == [None] * 20
    finally:
        gc.enable()
