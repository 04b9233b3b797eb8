"""The export thread of `OTLPSpanProcessor`: batches, encodes and sends, and counts it all.

It sleeps until a full batch is queued (the request thread wakes it, once
per batch), its timer (`schedule_delay`) passes, a flush is asked for, or
the processor shuts down. Then it takes spans off the queue in batches of
`max_export_batch_size`: full batches as soon as they are there, the rest
when the timer passes or on a flush. Each batch is encoded in one call of
the encoder (compiled, or its Python twin) and sent by `OTLPSender` within
`export_timeout`. At shutdown everything still queued is sent within one
`export_timeout` in all, so a dead endpoint cannot hold the process's exit.

Every span ends in one count: exported, dropped (the request thread counts
those) or failed (given up: refused, out of time, or a span the encoder
could not encode). While drops or failures happen, one warning with the
counts is logged at most every `WARN_INTERVAL` seconds.
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
from .. import _sdk
from .config import ExportConfig
from .sender import OTLPSender, SendOutcome

logger = logging.getLogger("hooktel.otel.export")

_ENCODER = "hooktel.otel.export.encoder"
_encoder = _core.twin(  # the compiled encoder reads the fields behind these properties
    _ENCODER,
    readable_fields={field.removeprefix("_"): field for field in _sdk.READABLE_FIELDS},
    attributes_dict=_sdk.ATTRIBUTES_DICT,
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
    in_flight: int
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
        self._reason = ""  # why the last batch failed
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
        with self._lock:
            return Counts(
                self._exported, self._dropped, self._failed, self._in_flight, self._left_out
            )

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        self.wake()
        return done.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._config.export_timeout + 5.0)
        self._sender.close()

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
                self._export(len(self._queue), time.monotonic() + self._config.export_timeout)
            elif flushes or time.monotonic() >= next_timer:
                self._export(len(self._queue))
                next_timer = time.monotonic() + delay
            else:
                batch = self._config.max_export_batch_size
                self._export(len(self._queue) // batch * batch)
            for done in flushes:
                done.set()
            if stopping:
                self._close()
                return
            self._warn()

    def _export(self, count: int, shared_deadline: float | None = None) -> None:
        """Send `count` queued spans, a batch at a time."""
        queue, size = self._queue, self._config.max_export_batch_size
        while count > 0 and queue:
            spans = [queue.popleft() for _ in range(min(count, size, len(queue)))]
            count -= len(spans)
            with self._lock:
                self._in_flight = len(spans)
            self._send(spans, shared_deadline)
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
            outcome = SendOutcome(False, "export timeout reached at shutdown")
        else:
            outcome = self._send_safely(payload, deadline)
        sent = len(spans) - bad
        with self._lock:
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
            return self._sender.send(payload, deadline)
        except Exception as exc:
            self._sender.close()
            logger.exception("hooktel: sending an OTLP batch failed unexpectedly")
            return SendOutcome(False, f"{type(exc).__name__}: {exc}")

    def _close(self) -> None:
        """After the last drain: spans that slipped in meanwhile are counted as dropped."""
        leftover = len(self._queue)
        self._queue.clear()
        with self._lock:
            self._dropped += leftover
        self._sender.close()
        self._warn(final=True)

    def _warn(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._warned_at < WARN_INTERVAL:
            return
        with self._lock:
            current = (self._dropped, self._failed, self._left_out)
            exported = self._exported
        dropped, failed, left_out = (a - b for a, b in zip(current, self._reported, strict=True))
        if not (dropped or failed or left_out):
            return
        logger.warning(
            "hooktel OTLP export to %s: %d span(s) dropped (queue full, max_queue_size=%d), "
            "%d failed (%s), %d attribute value(s) left out, since the last report; "
            "%d exported in all",
            self._config.endpoint,
            dropped,
            self._config.max_queue_size,
            failed,
            self._reason or "-",
            left_out,
            exported,
        )
        self._reported = current
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
