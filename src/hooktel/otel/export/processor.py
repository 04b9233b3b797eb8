"""`OTLPSpanProcessor`: batches finished spans and sends them as OTLP/HTTP protobuf.

A drop-in for `BatchSpanProcessor(OTLPSpanExporter(...))` that costs the
request thread only the hand-over: `on_end` checks the span is sampled and
appends it to a bounded queue (a `deque`: no lock), and wakes the export
thread only when a full batch is waiting. Everything else happens on the
export thread (`thread`): batching, encoding with the
compiled encoder (`encoder.c`, or its Python twin `encoder_py` where it is
not built or `HOOKTEL_PURE_PYTHON=1`), and sending (`sender`), which
releases the GIL while the batch is on the wire.

When the queue is full a span is dropped, never waited for; every span is
accounted for in `stats()`: exported, dropped (queue full, or ended after
shutdown), failed (its batch was given up, or not sent by the end of
`shutdown()`), or still queued; never queued once `shutdown()` returned.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .config import SHUTDOWN_TIMEOUT, ExportConfig
from .thread import ExportThread

__all__ = ["ExportStats", "OTLPSpanProcessor"]


@dataclass(frozen=True)
class ExportStats:
    """What became of the spans an `OTLPSpanProcessor` was handed (sampled ones)."""

    exported: int
    """Received by the endpoint (a 2xx answer)."""
    dropped: int
    """Not queued: the queue was full, or the processor was shut down."""
    failed: int
    """Queued, then given up: the endpoint refused the batch, the export timeout passed,
    or `shutdown()` ran out of time before it was sent."""
    queued: int
    """Still waiting in the queue, or being sent; 0 once `shutdown()` returned."""
    left_out_attributes: int
    """Attribute values OTLP cannot carry, left out of the spans that were sent."""


class OTLPSpanProcessor(SpanProcessor):
    """Exports every sampled span as OTLP/HTTP protobuf, encoded natively, off the request path.

        provider.add_span_processor(OTLPSpanProcessor())   # configured from the environment
        provider.add_span_processor(OTLPSpanProcessor(endpoint="http://collector:4318/v1/traces"))

    Arguments (each falls back to the environment variable the stock classes
    read, see `config`): `endpoint`, `headers`, `timeout` (seconds per
    request), `compression` (`"gzip"`, `"deflate"`, `"none"`),
    `certificate_file`, `client_key_file`, `client_certificate_file`,
    `max_queue_size`, `schedule_delay_millis`, `max_export_batch_size`,
    `export_timeout_millis`.
    """

    # hooktel's own request spans can be handed over as they are (see `spans.handover`):
    # this processor only reads the fields every ReadableSpan has, after the span ended.
    takes_ended_request_spans = True

    def __init__(  # noqa: PLR0917 - positional like the stock exporter's arguments
        self,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> None:
        self.config = ExportConfig.resolve(
            endpoint=endpoint,
            headers=headers,
            timeout=timeout,
            compression=compression,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
            export_timeout_millis=export_timeout_millis,
        )
        self._max_queue = self.config.max_queue_size
        self._batch = self.config.max_export_batch_size
        self._thread = self._new_thread()
        this = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(this, "_after_fork"))
        atexit.register(_call, this, "shutdown")
        _live.add(self)
        _flush_on_sigterm()

    def _new_thread(self) -> ExportThread:
        """A fresh queue and its running export thread."""
        self._queue: deque[ReadableSpan] = deque()
        self._closed = False
        thread = ExportThread(self._queue, self.config)
        thread.start()
        return thread

    def _after_fork(self) -> None:
        """In a forked child: start empty, with a thread and a connection of its own.

        The spans queued before the fork are the parent's to send; the parent's
        thread does not exist here, and its connection is the parent's.
        """
        self._thread.abandon()  # closes the child's copy of the parent's connection
        self._thread = self._new_thread()

    # -- the request thread's side: the hand-over ---------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a sampled span (or count it dropped); wake the thread for a full batch."""
        if not span.context.trace_flags & 1:  # TraceFlags.SAMPLED, without the Enum lookups
            return
        queue = self._queue
        if len(queue) >= self._max_queue or self._closed:
            self._thread.count_dropped()
            return
        queue.append(span)
        if len(queue) >= self._batch and not self._thread.woken:
            self._thread.wake()

    # -- the SDK's SpanProcessor lifecycle ----------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send every span queued so far; True when done within `timeout_millis`.

        Returns False at `timeout_millis` at the latest; the spans not sent by
        then stay queued, and are sent (or given up) within their own export timeout.
        """
        if self._closed:
            return True
        return self._thread.flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Send what is queued within `timeout_millis`, then stop; later spans are dropped.

        The default, the export timeout but at most `SHUTDOWN_TIMEOUT` (10 s),
        leaves room in a 30 s grace period. What is not sent by then, the batch
        on the wire included, is counted as failed and reported in one warning.
        """
        if self._closed:
            return
        self._closed = True
        if timeout_millis is None:
            timeout = min(self.config.export_timeout, SHUTDOWN_TIMEOUT)
        else:
            timeout = max(0.0, timeout_millis / 1000)
        self._thread.stop(timeout)

    def stats(self) -> ExportStats:
        """Exported, dropped, failed and still queued span counts, since this process started."""
        counts = self._thread.counts()
        return ExportStats(
            exported=counts.exported,
            dropped=counts.dropped,
            failed=counts.failed,
            queued=counts.queued,
            left_out_attributes=counts.left_out_attributes,
        )


_live: weakref.WeakSet[OTLPSpanProcessor] = weakref.WeakSet()


def _flush_on_sigterm() -> None:
    """Send the queue before a SIGTERM ends the process, where SIGTERM would just kill it.

    Exit handlers (`atexit`) do not run when a process dies of a signal. Where
    SIGTERM still has its default action (and only there, in the main thread),
    a handler shuts the processors down, then dies of the same signal as
    before. A server that handles SIGTERM itself (gunicorn, uvicorn while it
    runs) is left alone; uvicorn, once it has stopped, raises the signal again
    under the handler it found at start: this one when the processor was made
    before uvicorn started (`opentelemetry-instrument`, a main module), else
    the default one, which loses the queue (see docs/export.md).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _shutdown_then_die)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        return


def _shutdown_then_die(signum: int, frame: object) -> None:
    for processor in list(_live):
        processor.shutdown()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _call(ref: weakref.ref[OTLPSpanProcessor], method: str) -> Any:
    """Call `method` on the processor if it still exists (fork and exit hooks hold no ref)."""
    processor = ref()
    return None if processor is None else getattr(processor, method)()
