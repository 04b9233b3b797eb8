"""`OTLPSpanProcessor` with a dead, sleeping or refusing receiver: bounded, counted, reported.

- `shutdown()` and `force_flush()` return within the timeout they are given
  (`shutdown()`'s default: at most 10 s), against a closed port, a receiver
  that does not answer, and a 503 whose `Retry-After` does not fit: the batch
  already on the wire and its retries included.
- After `shutdown()` nothing is queued: what was not sent is failed, and one
  warning says so with the numbers.
- While serving, the first failed try is reported (rate-limited), long
  before its batch is given up.
- `stats()` adds up to the spans handed over at every moment, while request
  threads hand spans over, the export thread sends them, and the processor
  shuts down.

Timings are upper bounds only, with slack for a loaded machine; the receiver
is the real one, in its own process, misbehaving through its fault modes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from hooktel.otel import OTLPSpanProcessor
from hooktel.otel.export.processor import ExportStats
from hooktel.otel.export.thread import WARN_INTERVAL
from tests.otel.otlp_receiver import Fault, ReceiverProcess, receiver_process
from tests.support.events import wait_for

CLOSED = "http://127.0.0.1:9/v1/traces"  # the discard port: nothing listens, refused at once
SLACK = 3.0  # seconds a loaded machine may add to a bound
NO_ANSWER = Fault(delay=120.0)  # answers long after any test is over
RETRY_LATER = Fault(status=503, retry_after="30")  # fits the export timeout (60 s) only


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with receiver_process() as running:
        yield running


def _span(number: int) -> ReadableSpan:
    context = SpanContext(1, number + 1, False, TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(f"span {number}", context, start_time=1, end_time=2)


def _total(stats: ExportStats) -> int:
    return stats.exported + stats.dropped + stats.failed + stats.queued


def _endpoint(receiver: ReceiverProcess, fault: Fault | None) -> str:
    if fault is None:
        return CLOSED
    receiver.set_fault(fault)
    return receiver.endpoint


def _shutdown_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " at shutdown: " in r.getMessage()]


FAULTS = [None, NO_ANSWER, RETRY_LATER]
FAULT_IDS = ["closed-port", "no-answer", "503-retry-after-30s"]


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_shutdown_returns_within_its_timeout_and_counts_what_it_could_not_send(
    receiver: ReceiverProcess, caplog: pytest.LogCaptureFixture, fault: Fault | None
) -> None:
    endpoint = _endpoint(receiver, fault)
    # Long export timeout and per-request timeout: only the shutdown's timeout can end it.
    processor = OTLPSpanProcessor(
        endpoint=endpoint,
        timeout=60,
        export_timeout_millis=60_000,
        max_export_batch_size=100,
        schedule_delay_millis=10,
    )
    for number in range(1000):
        processor.on_end(_span(number))
    assert processor.force_flush(200) is False  # a batch is on the wire, or waiting to retry
    caplog.set_level(logging.WARNING, "hooktel.otel.export")
    started = time.monotonic()
    processor.shutdown(timeout_millis=1500)
    took = time.monotonic() - started
    stats = processor.stats()
    assert took < 1.5 + SLACK
    assert stats.queued == 0
    assert stats.exported == 0
    assert stats.failed == 1000 and _total(stats) == 1000
    (warning,) = _shutdown_warnings(caplog)
    assert endpoint in warning
    assert "1000 span(s) not sent within the shutdown timeout of 1.5 s" in warning
    assert processor.stats() == stats  # final: nothing arrives later from a stuck thread


def test_shutdown_by_default_fits_a_30_s_grace_period(receiver: ReceiverProcess) -> None:
    processor = OTLPSpanProcessor(endpoint=_endpoint(receiver, NO_ANSWER), timeout=60)
    assert processor.config.export_timeout == 30.0  # the stock default, kept
    processor.on_end(_span(0))
    started = time.monotonic()
    processor.shutdown()  # as TracerProvider.shutdown() and the exit hook call it
    assert time.monotonic() - started < 10.0 + SLACK
    stats = processor.stats()
    assert (stats.failed, stats.queued) == (1, 0)


def test_no_retry_is_made_whose_wait_would_pass_the_deadline(receiver: ReceiverProcess) -> None:
    receiver.set_fault(Fault(status=503, retry_after="5"))
    processor = OTLPSpanProcessor(
        endpoint=receiver.endpoint,
        export_timeout_millis=60_000,
        schedule_delay_millis=600_000,  # nothing is sent before the shutdown
    )
    for number in range(10):
        processor.on_end(_span(number))
    started = time.monotonic()
    processor.shutdown(timeout_millis=3000)
    assert time.monotonic() - started < 3.0 + SLACK
    assert [post["status"] for post in receiver.posts()] == [503]  # 5 s does not fit in 3 s
    assert processor.stats().failed == 10


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_force_flush_returns_within_its_timeout(
    receiver: ReceiverProcess, fault: Fault | None
) -> None:
    processor = OTLPSpanProcessor(
        endpoint=_endpoint(receiver, fault), timeout=60, export_timeout_millis=60_000
    )
    for number in range(600):
        processor.on_end(_span(number))
    started = time.monotonic()
    assert processor.force_flush(1000) is False
    assert time.monotonic() - started < 1.0 + SLACK
    processor.shutdown(timeout_millis=500)
    assert processor.stats().queued == 0


def test_a_failing_receiver_is_reported_while_serving_at_most_once_an_interval(
    receiver: ReceiverProcess, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.set_fault(Fault(status=503))  # retried with backoff: 0.5 s, 1 s, 2 s, ...
    caplog.set_level(logging.WARNING, "hooktel.otel.export")
    processor = OTLPSpanProcessor(
        endpoint=receiver.endpoint, export_timeout_millis=60_000, schedule_delay_millis=10
    )
    processor.on_end(_span(0))

    def reports() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "hooktel.otel.export"]

    (first,) = wait_for(reports, "a warning while the batch is being retried", 10)
    first_at = time.monotonic()
    assert receiver.endpoint in first and "HTTP 503" in first
    assert processor.stats().failed == 0  # the batch is still being retried: not given up
    wait_for(lambda: len(receiver.posts()) >= 3, "two more failed tries", 20)
    allowed = 1 + int((time.monotonic() - first_at) / WARN_INTERVAL)
    assert len(reports()) <= allowed
    processor.shutdown(timeout_millis=200)


def test_stats_add_up_at_every_moment_while_spans_come_go_and_the_processor_stops(
    receiver: ReceiverProcess,
) -> None:
    processor = OTLPSpanProcessor(
        endpoint=receiver.endpoint,
        max_queue_size=256,  # small: some spans are dropped too
        max_export_batch_size=32,
        schedule_delay_millis=1,
    )
    spans = [_span(number) for number in range(64)]
    producers = 3
    started = [0] * producers
    finished = [0] * producers
    stop = threading.Event()
    wrong: list[str] = []

    def produce(index: int) -> None:
        while not stop.is_set():
            for span in spans:
                started[index] += 1
                processor.on_end(span)
                finished[index] += 1

    def check() -> None:
        while not stop.is_set():
            before = sum(finished)
            total = _total(processor.stats())
            after = sum(started)
            if not before <= total <= after:
                wrong.append(f"{before} <= {total} <= {after}")

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads change hands often: any window between counts shows
    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    threads.append(threading.Thread(target=check))
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: processor.stats().exported > 5000, "spans exported meanwhile", 60)
        processor.shutdown(timeout_millis=5000)
        wait_for(lambda: sum(finished) > 0 and processor.stats().dropped > 0, "drops", 10)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(switch)
    stats = processor.stats()
    assert wrong == []
    assert stats.queued == 0
    assert _total(stats) == sum(started) == sum(finished)
