"""Records a Starlette app under uvicorn writes carry its request's SERVER span ids:
in the handler, in `run_in_threadpool` work, in a sync handler (Starlette runs it in a
thread) and in an exception handler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hooktel.otel import LoggingInstrumentation
from tests.otel.inprocess import server_spans, traced, uvicorn_thread, wait_until

log = logging.getLogger("shop")


class Lines(logging.Handler):
    """The records' messages and the ids stamped on them, as a handler formats them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s %(otelTraceID)s %(otelSpanID)s"))
        self.lines: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record).split())


def work() -> str:
    log.warning("threadpool")
    return "done"


async def in_threadpool(request: Request) -> PlainTextResponse:
    log.warning("handler")
    return PlainTextResponse(await run_in_threadpool(work))


def sync(request: Request) -> PlainTextResponse:
    log.warning("sync")
    return PlainTextResponse("sync")


async def fails(request: Request) -> PlainTextResponse:
    try:
        raise KeyError("caught")
    except KeyError:
        log.exception("except")
    raise ValueError("to the exception handler")


async def on_error(request: Request, exc: Exception) -> PlainTextResponse:
    log.warning("exception-handler")
    return PlainTextResponse("handled", status_code=500)


APP = Starlette(
    routes=[Route("/pool", in_threadpool), Route("/sync", sync), Route("/fails", fails)],
    exception_handlers={ValueError: on_error},
)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    log.addHandler(handler)
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(inject_trace_context=True)
    try:
        yield handler
    finally:
        instrumentation.uninstrument()
        log.removeHandler(handler)


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_every_record_carries_its_requests_span(lines: Lines, fast_path: str) -> None:
    with traced(fast_path) as (_provider, exporter), uvicorn_thread(APP) as port:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/pool").text == "done"
        assert httpx.get(f"{url}/sync").text == "sync"
        assert httpx.get(f"{url}/fails").text == "handled"
        ended = wait_until(  # a span ends once the server has sent the whole response
            lambda: len(found := server_spans(exporter)) == 3 and found, "the three spans"
        )
        spans = {span.name: span for span in ended}
    expected: dict[str, Any] = {}
    for route, messages in (
        ("/pool", ("handler", "threadpool")),
        ("/sync", ("sync",)),
        ("/fails", ("except", "exception-handler")),
    ):
        ctx = spans[f"GET {route}"].context
        for message in messages:
            expected[message] = [message, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")]
    stamped = [line[:3] for line in lines.lines if line and line[0] in expected]
    assert stamped == list(expected.values())
