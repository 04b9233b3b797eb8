"""Memory growth over many requests of one app with one variant applied.

Driven in-process (`drivers.DRIVERS`), which is fast and deterministic: no
server, no sockets, nothing else allocating. Two passes per app: one reads
the process RSS, one traces allocations with `tracemalloc` (which would
otherwise inflate the RSS). Both compare request N/10 with request N. Before
each reading the span processors' queues are flushed (`otelsdk.flush_all`)
and garbage is collected, so spans waiting for export are not counted.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Any

from .exportcost import batch_of
from .inprocess import driven
from .otelsdk import flush_all
from .receiver import receiving
from .results import MemoryResult


def rss_bytes() -> int:
    """Current resident set size (Linux /proc); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _serve(call: Any, count: int) -> None:
    for _ in range(count):
        call()
    flush_all()
    gc.collect()


def measure_memory(app: str, variant: str, requests: int) -> MemoryResult:
    checkpoint = requests // 10
    with driven(app, variant) as call:
        _serve(call, checkpoint)
        rss_start = rss_bytes()
        _serve(call, requests - checkpoint)
        rss_end = rss_bytes()

    tracemalloc.start()
    try:
        with driven(app, variant) as call:
            _serve(call, checkpoint)
            before = tracemalloc.take_snapshot()
            traced_start = tracemalloc.get_traced_memory()[0]
            _serve(call, requests - checkpoint)
            traced_end = tracemalloc.get_traced_memory()[0]
            after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = [str(stat) for stat in after.compare_to(before, "lineno")[:5] if stat.size_diff > 1024]
    return MemoryResult(
        app=app,
        variant=variant,
        requests=requests,
        checkpoint=checkpoint,
        rss_growth_bytes=rss_end - rss_start,
        tracemalloc_growth_bytes=traced_end - traced_start,
        top_growth=growth,
    )


def measure_processor_memory(spans: int) -> MemoryResult:
    """`spans` finished spans through `OTLPSpanProcessor` to a receiver process.

    The spans (hooktel-like, 10 attributes; a few objects handed over again
    and again) go in chunks of one queue's worth, each chunk flushed, so none
    is dropped and every one is encoded and sent. Growth is measured as in
    `measure_memory`: from span N/10 to span N, once by RSS, once by tracemalloc.
    """
    from hooktel.otel import OTLPSpanProcessor

    sample = batch_of(64)
    checkpoint = spans // 10
    with receiving() as receiver:
        processor = OTLPSpanProcessor(endpoint=receiver.endpoint)
        chunk = processor.config.max_queue_size

        def feed(count: int) -> None:
            for start in range(0, count, chunk):
                for i in range(min(chunk, count - start)):
                    processor.on_end(sample[i % len(sample)])
                processor.force_flush()
            gc.collect()

        try:
            feed(checkpoint)
            rss_start = rss_bytes()
            feed(spans - checkpoint)
            rss_end = rss_bytes()
            tracemalloc.start()
            try:
                feed(checkpoint)
                before = tracemalloc.take_snapshot()
                traced_start = tracemalloc.get_traced_memory()[0]
                feed(spans - checkpoint)
                traced_end = tracemalloc.get_traced_memory()[0]
                after = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
            stats = processor.stats()
        finally:
            processor.shutdown()
    if stats.dropped or stats.failed or stats.exported != 2 * spans:
        raise RuntimeError(f"the soak lost spans: {stats}")
    growth = [str(stat) for stat in after.compare_to(before, "lineno")[:5] if stat.size_diff > 1024]
    return MemoryResult(
        app="OTLPSpanProcessor",
        variant=f"{spans:,} spans to a receiver process",
        requests=spans,
        checkpoint=checkpoint,
        rss_growth_bytes=rss_end - rss_start,
        tracemalloc_growth_bytes=traced_end - traced_start,
        top_growth=growth,
    )
