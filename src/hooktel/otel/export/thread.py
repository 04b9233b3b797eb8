"""The export thread of `OTLPSpanProcessor`: batches, encodes and sends, and counts it all.

It sleeps until a full batch is queued (the request thread wakes it, once
per batch), its timer (`schedule_delay`) passes, a flush is asked for, or
the processor shuts down. Then it takes spans off the queue in batches of
`max_export_batch_size`: full batches as soon as they are there, the rest
when the timer passes or on a flush. Each batch is encoded in one call of
the encoder (compiled, or its Python twin) and sent by `OTLPSender` within
`export_timeout`.

`stop(timeout)` sends what is still queued within `timeout` in all, the
batch already on the wire included: its deadline is moved to the stop's
(`OTLPSender.cut_off`). What is not sent by then is counted as failed, by
the thread or, when it is still stuck on the socket, by `stop()` itself, so
that once `stop()` returns nothing is counted as queued.

Every span ends in one count: exported, dropped (the request thread counts
those) or failed (given up: refused, out of time, or a span the encoder
could not encode). A span moves from the queue to the batch on its way, and
from there to its count, under the lock `counts()` reads under: the counts
add up to the spans handed over at every moment. While tries fail, spans
are dropped or fail, one warning with the counts is logged at most every
`WARN_INTERVAL` seconds; at the stop, one warning says what was lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ... import _core
from .._sdk import trace as trace_seam
from .config import ExportConfig
from .sender import OTLPSender, SendOutcome

logger = logging.getLogger("hooktel.otel.export")

_ENCODER = "hooktel.otel.export.encoder"
_encoder = _core.twin(  # the compiled encoder reads the fields behind these properties
    _ENCODER,
    readable_fields={field.removeprefix("_"): field for field in trace_seam.READABLE_FIELDS},
    attributes_dict=trace_seam.ATTRIBUTES_DICT,
)
ENCODER_NATIVE = _encoder.__name__ == _ENCODER
"""True when batches are encoded by the compiled encoder, False by its Python twin."""
encode_spans: Callable[[Sequence[Any]], tuple[bytes, int]] = _encoder.encode_spans
WARN_INTERVAL = 5.0


@dataclass(frozen=True)
class Counts:
    exported: int
    dropped: int
    failed: int
    queued: int
    left_out_attributes: int


class ExportThread:
    """One processor's background thread, its counts, and its flush and stop requests."""

    def __init__(self, queue: deque[Any], config: ExportConfig) -> None:
        self._queue = queue
        self._config = config
        self._sender = OTLPSender(config)
        self._event = threading.Event()
        self.woken = False
        """Set by `wake()`, cleared by the thread before it looks at the queue again:
        the request thread calls `wake()` once per batch, not once per span."""
        self._lock = threading.Lock()  # the counts and the flush requests
        self._exported = self._dropped = self._failed = self._in_flight = self._left_out = 0
        self._flushes: list[threading.Event] = []
        self._stopping = False
        self._reported = (0, 0, 0)  # dropped, failed, left out: as of the last warning
        self._warned_at = float("-inf")
        self._reason = ""  # why the last batch (or try) failed
        self._failed_tries = 0  # since the last warning
        self._finished = False  # the final count is made: later outcomes count for nothing
        self._stop_timeout = 0.0
        self._stop_deadline = float("inf")
        self._failed_before_stop = 0
        self._warn_lock = threading.Lock()  # the thread and `stop()` may both report
        self._thread = threading.Thread(target=self._run, name="hooktel-otlp-export", daemon=True)

    # -- called from other threads --------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self.woken = True
        self._event.set()

    def count_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def counts(self) -> Counts:
        """The counts, `queued` being the queue and the batch on its way, in one snapshot."""
        with self._lock:
            if self._finished:  # a span that raced the stop into the queue: dropped
                while self._queue:
                    self._queue.popleft()
                    self._dropped += 1
            return Counts(
                self._exported,
                self._dropped,
                self._failed,
                len(self._queue) + self._in_flight,
                self._left_out,
            )

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        self.wake()
        return done.wait(timeout)

    def stop(self, timeout: float) -> None:
        """Send what is queued within `timeout` seconds in all, then count the rest as failed."""
        deadline = time.monotonic() + timeout
        self._stop_timeout, self._stop_deadline = timeout, deadline
        with self._lock:
            self._failed_before_stop = self._failed
        self._sender.cut_off(deadline)
        self._stopping = True
        self.wake()
        if not self._thread.is_alive() or self._thread is threading.current_thread():
            self._finish()
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():  # still waiting for an answer: end that, count the rest
            self._sender.interrupt()
            self._finish()

    def abandon(self) -> None:
        """In a forked child: close the child's copy of the connection, leave the rest."""
        self._sender.close()

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._config.schedule_delay
        next_timer = time.monotonic() + delay
        while True:
            self.woken = False
            if len(self._queue) < self._config.max_export_batch_size and not (
                self._flushes or self._stopping
            ):
                self._event.wait(max(0.0, next_timer - time.monotonic()))
            self._event.clear()
            with self._lock:
                flushes, self._flushes = self._flushes, []
            stopping = self._stopping
            if stopping:
                self._export(len(self._queue), self._stop_deadline)
            elif flushes or time.monotonic() >= next_timer:
                self._export(len(self._queue))
                next_timer = time.monotonic() + delay
            else:
                batch = self._config.max_export_batch_size
                self._export(len(self._queue) // batch * batch)
            for done in flushes:
                done.set()
            if stopping:
                self._finish()
                self._sender.close()
                return
            self._warn()

    def _export(self, count: int, shared_deadline: float | None = None) -> None:
        """Send `count` queued spans, a batch at a time."""
        queue, size = self._queue, self._config.max_export_batch_size
        while count > 0 and queue:
            with self._lock:  # off the queue and onto the wire in one step, for `counts()`
                spans = [queue.popleft() for _ in range(min(count, size, len(queue)))]
                self._in_flight = len(spans)
            count -= len(spans)
            self._send(spans, shared_deadline)
            if not self._stopping:
                self._warn()
            # Behind (a batch already waiting): free it at once, export comes first.
            _release(spans, yielding=len(queue) < size)

    def _send(self, spans: list[Any], shared_deadline: float | None) -> None:
        deadline = time.monotonic() + self._config.export_timeout
        if shared_deadline is not None:
            deadline = min(deadline, shared_deadline)
        payload, left_out, bad = _encode(spans)
        if not payload and bad == len(spans):
            outcome = SendOutcome(False, "no span could be encoded")
        elif time.monotonic() >= deadline:
            # Not tried: the failure that used up the time stays the one reported.
            outcome = SendOutcome(False, self._reason or "export timeout reached at shutdown")
        else:
            outcome = self._send_safely(payload, deadline)
        sent = len(spans) - bad
        with self._lock:
            if self._finished:  # `stop()` gave up waiting and counted this batch as failed
                return
            self._in_flight = 0
            self._left_out += left_out
            self._failed += bad
            if outcome.sent:
                rejected = min(outcome.rejected, sent)
                self._exported += sent - rejected
                self._failed += rejected
                if rejected:
                    self._reason = f"the receiver rejected {rejected}: {outcome.reason}"
            else:
                self._failed += sent
                self._reason = outcome.reason
        if bad:
            self._reason = f"{bad} span(s) could not be encoded"

    def _send_safely(self, payload: bytes, deadline: float) -> SendOutcome:
        """The sender's outcome; whatever it raises fails this batch, not the thread."""
        try:
            return self._sender.send(payload, deadline, self._failed_try)
        except Exception as exc:
            self._sender.close()
            logger.exception("hooktel: sending an OTLP batch failed unexpectedly")
            return SendOutcome(False, f"{type(exc).__name__}: {exc}")

    def _failed_try(self, reason: str) -> None:
        """A try failed and will be retried: warn now (rate-limited), not when the batch fails."""
        self._reason = reason
        self._failed_tries += 1
        if not self._stopping:
            self._warn()

    def _finish(self) -> None:
        """The final count, once: what is still queued or on its way failed; then one warning.

        Made by the thread after its last drain, or by `stop()` when the thread
        is still stuck at the deadline (its late outcome then counts for nothing).
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
            unsent = self._in_flight
            self._in_flight = 0
            while self._queue:  # popleft, not clear(): a span appended meanwhile is counted
                self._queue.popleft()
                unsent += 1
            self._failed += unsent
            lost = self._failed - self._failed_before_stop
            totals = (self._exported, self._dropped, self._failed)
        if not lost:
            self._warn(final=True)
            return
        with self._warn_lock:
            logger.warning(
                "hooktel OTLP export to %s at shutdown: %d span(s) not sent within the shutdown "
                "timeout of %g s, counted as failed (last failure: %s); "
                "in all %d exported, %d dropped, %d failed",
                self._config.endpoint,
                lost,
                self._stop_timeout,
                self._reason or "no answer",
                *totals,
            )

    def _warn(self, final: bool = False) -> None:
        with self._warn_lock:
            self._warn_locked(final)

    def _warn_locked(self, final: bool) -> None:
        now = time.monotonic()
        if not final and now - self._warned_at < WARN_INTERVAL:
            return
        with self._lock:
            current = (self._dropped, self._failed, self._left_out)
            exported = self._exported
        dropped, failed, left_out = (a - b for a, b in zip(current, self._reported, strict=True))
        if not (dropped or failed or left_out or self._failed_tries):
            return
        logger.warning(
            "hooktel OTLP export to %s%s: %d span(s) dropped (queue full, max_queue_size=%d), "
            "%d failed, %d failed tries, %d attribute value(s) left out, since the last report "
            "(last failure: %s); %d exported in all",
            self._config.endpoint,
            " at shutdown" if final else "",
            dropped,
            self._config.max_queue_size,
            failed,
            self._failed_tries,
            left_out,
            self._reason or "-",
            exported,
        )
        self._reported = current
        self._failed_tries = 0
        self._warned_at = now


RELEASE_SLICE = 32


def _release(spans: list[Any], yielding: bool) -> None:
    """Free a sent batch, a slice at a time, letting the server's threads run in between.

    Freeing 512 spans holds the GIL for about half a millisecond, with no point
    where the interpreter would hand it over before its switch interval (5 ms):
    every request that comes in meanwhile waits out the whole of it. With
    `yielding`, `time.sleep(0)` after each slice gives the GIL to a thread that
    waits for it. Each such yield may cost this thread a switch interval to get
    the GIL back, so the caller asks for it only while the queue keeps up.
    """
    while spans:
        del spans[-RELEASE_SLICE:]
        if yielding:
            time.sleep(0)


def _encode(spans: list[Any]) -> tuple[bytes, int, int]:
    """The batch's payload, the attribute values left out, and the spans left out.

    A span the encoder cannot encode at all makes the whole call raise: then
    each span is tried alone, and the batch is sent without the bad ones.
    """
    try:
        payload, left_out = encode_spans(spans)
        return payload, left_out, 0
    except Exception as exc:
        good = [span for span in spans if _encodes(span)]
        logger.warning("hooktel: %d span(s) could not be encoded: %s", len(spans) - len(good), exc)
        if not good:
            return b"", 0, len(spans)
        payload, left_out = encode_spans(good)
        return payload, left_out, len(spans) - len(good)


def _encodes(span: Any) -> bool:
    try:
        encode_spans([span])
    except Exception:
        return False
    return True
