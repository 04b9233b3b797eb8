"""Log correlation where it could go wrong: a record made while a span ends, in another
thread, in a forked child, by a handler logging inside logging, in a span that cannot
say its context; nothing raises into the code that logs, and no span is kept alive."""

from __future__ import annotations

import contextvars
import gc
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from hooktel.otel import LoggingInstrumentation

log = logging.getLogger("faults")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def records(provider: TracerProvider) -> Iterator[Records]:
    handler = Records()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True)
    try:
        yield handler
    finally:
        instrumentation.uninstrument()
        log.removeHandler(handler)


def ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def stamped(record: logging.LogRecord) -> tuple[str, str]:
    return record.otelTraceID, record.otelSpanID


def test_records_made_while_spans_end(records: Records, provider: TracerProvider) -> None:
    """The SDK ends a span after its context is left: what is current then is stamped."""

    class LogsOnEnd(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            log.info("ending %s", span.name)

    provider.add_span_processor(LogsOnEnd())
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child"):
        pass
    by_message = {r.getMessage(): stamped(r) for r in records.records}
    assert by_message == {"ending child": ids(parent), "ending parent": ("0", "0")}


def test_records_from_other_threads(records: Records, provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span("work") as span:
        plain = threading.Thread(target=log.info, args=("plain thread",))
        context = contextvars.copy_context()
        copied = threading.Thread(target=context.run, args=(log.info, "context copied"))
        for thread in (plain, copied):
            thread.start()
            thread.join()
    by_message = {r.getMessage(): stamped(r) for r in records.records}
    assert by_message == {"plain thread": ("0", "0"), "context copied": ids(span)}


def test_concurrent_spans_each_stamp_their_own(records: Records, provider: TracerProvider) -> None:
    tracer = provider.get_tracer("t")
    expected: dict[str, tuple[str, str]] = {}
    start = threading.Barrier(8)

    def worker(number: int) -> None:
        start.wait()
        for round_ in range(200):
            with tracer.start_as_current_span(f"{number}-{round_}") as span:
                log.info("%s-%s", number, round_)
                expected[f"{number}-{round_}"] = ids(span)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.getMessage(): stamped(r) for r in records.records} == expected


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_record_in_a_forked_child(provider: TracerProvider, records: Records) -> None:
    read, write = os.pipe()
    with provider.get_tracer("t").start_as_current_span("work") as span:
        pid = os.fork()
        if pid == 0:  # the child: its own record, stamped, written back; never returns
            try:
                log.info("child")
                record = records.records[-1]
                os.write(write, " ".join(stamped(record)).encode())
            finally:
                os._exit(0)
    os.close(write)
    with os.fdopen(read) as child:
        written = child.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert written.split() == list(ids(span))


def test_a_handler_that_logs_inside_logging(records: Records, provider: TracerProvider) -> None:
    inner = logging.getLogger("faults.inner")
    inner.propagate = False
    inner_records = Records()
    inner.addHandler(inner_records)

    class Chatty(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            inner.warning("handling %s", record.getMessage())

    chatty = Chatty()
    log.addHandler(chatty)
    try:
        with provider.get_tracer("t").start_as_current_span("work") as span:
            log.info("outer")
    finally:
        log.removeHandler(chatty)
        inner.removeHandler(inner_records)
    [nested] = inner_records.records
    assert nested.getMessage() == "handling outer" and stamped(nested) == ids(span)


def test_a_span_that_cannot_say_its_context(records: Records) -> None:
    class Broken(trace.NonRecordingSpan):
        def get_span_context(self) -> Any:
            raise RuntimeError("no context")

    with trace.use_span(Broken(trace.INVALID_SPAN_CONTEXT)):
        log.info("still logged")
    [record] = records.records
    assert stamped(record) == ("0", "0")  # the defaults: a format using them still works


def test_no_span_is_kept_alive(records: Records, provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span("work") as span:
        log.info("inside")
    ended = weakref.ref(span)
    del span
    records.records.clear()
    gc.collect()
    assert ended() is None
