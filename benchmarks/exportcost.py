"""Per-span cost of OTLP export, in process: what the request thread pays, and the encoding.

- The hand-over: `OTLPSpanProcessor.on_end(span)` for a finished span, the
  only export work on the request thread (the export thread sleeps: its
  batch and timer are out of reach while this is timed).
- One hooktel server span start to end (`FastSpans.start` + `end`, the ten
  attributes of `spancost.ATTRIBUTES`) with `OTLPSpanProcessor`, where the
  `RequestSpan` is handed over as it is, and with `BatchSpanProcessor` (drop
  exporter), which gets a `ReadableSpan` copy.
- Encoding one batch of 512 such spans, per span: the compiled encoder, its
  Python twin, and the stock exporter's (`encode_spans(...).SerializeToString()`).

Each figure is the median of `repeats` timings of ~`seconds`, with its
interquartile range; `python -m benchmarks.exportcost` prints them alone.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import timeit
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .inprocess import calls_for, iqr
from .otelsdk import tracer_provider
from .report import exportcost_table
from .results import ExportCost
from .spancost import ATTRIBUTES

BATCH = 512
NOWHERE = "http://127.0.0.1:9/v1/traces"  # never reached: nothing is sent while timing


def _time(
    call: Callable[[], Any], per_call: int, seconds: float, repeats: int
) -> tuple[float, float]:
    """Median and IQR of ns per span over `repeats` timings of ~`seconds` each."""
    timer = timeit.Timer(call)
    number = calls_for(call, seconds, start=1, minimum=1)  # a batch's Python encoding: ~12 ms
    timings = [timer.timeit(number) / number / per_call * 1e9 for _ in range(repeats)]
    return statistics.median(timings), iqr(timings)


def _idle_processor() -> Any:
    """An OTLPSpanProcessor whose export thread never wakes while it is timed."""
    from hooktel.otel import OTLPSpanProcessor

    return OTLPSpanProcessor(
        endpoint=NOWHERE,
        max_queue_size=10**8,
        max_export_batch_size=10**8,
        schedule_delay_millis=10**9,
        export_timeout_millis=1,
    )


def _discard(processor: Any) -> None:
    processor._queue.clear()  # benchmark only: nothing of what was timed is to be sent
    processor.shutdown()


def handover(seconds: float, repeats: int) -> ExportCost:
    processor = _idle_processor()
    span = batch_of(1)[0]
    try:
        ns, iqr = _time(lambda: processor.on_end(span), 1, seconds, repeats)
    finally:
        _discard(processor)
    return ExportCost("hand-over: OTLPSpanProcessor.on_end(span)", ns, iqr, "timeit, one span")


def request_span(seconds: float, repeats: int, native_processor: bool) -> ExportCost:
    """hooktel's server span, start to end, 10 attributes, through the given processor."""
    from hooktel.otel.spans.fastpath import FastSpans

    with ExitStack() as stack:
        if native_processor:
            processor = _idle_processor()
            stack.callback(_discard, processor)
            provider = TracerProvider(shutdown_on_exit=False)
            provider.add_span_processor(processor)
            label = "hooktel span start+end, OTLPSpanProcessor (RequestSpan handed over)"
        else:
            provider = tracer_provider(stack)
            # Its queue fills while it is timed: each "Queue full" warning would be printed.
            sdk_logger = logging.getLogger("opentelemetry.sdk._shared_internal")
            stack.callback(sdk_logger.setLevel, sdk_logger.level)
            sdk_logger.setLevel(logging.ERROR)
            label = "hooktel span start+end, BatchSpanProcessor (ReadableSpan copy)"
        fast = FastSpans.for_tracer(provider.get_tracer("hooktel-bench"))
        assert fast is not None
        parent = Context()

        def one() -> None:
            fast.start("GET", parent, dict(ATTRIBUTES), 1).end(2)

        ns, iqr = _time(one, 1, seconds, repeats)
    return ExportCost(label, ns, iqr, "timeit, FastSpans.start + end")


def batch_of(count: int) -> list[ReadableSpan]:
    """`count` finished server spans as hooktel exports them: 10 attributes, one resource."""
    resource = Resource.create({"service.name": "bench"})
    scope = InstrumentationScope("hooktel.otel", "0.1.0", "https://opentelemetry.io/schemas/1.26.0")
    return [
        ReadableSpan(
            "GET /",
            SpanContext(
                0x4BF92F3577B34DA6A3CE929D0E0E4736 + i, 0x00F067AA0BA902B7 + i, False, TraceFlags(1)
            ),
            SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736 + i, 0x1234 + i, True, TraceFlags(1)),
            resource,
            dict(ATTRIBUTES),
            kind=SpanKind.SERVER,
            status=Status(StatusCode.UNSET),
            start_time=1_700_000_000_000_000_000 + i,
            end_time=1_700_000_000_000_050_000 + i,
            instrumentation_scope=scope,
        )
        for i in range(count)
    ]


def encoding(seconds: float, repeats: int) -> list[ExportCost]:
    from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans

    from hooktel import _core
    from hooktel.otel.export import encoder_py as _encoder_py

    spans = batch_of(BATCH)
    how = f"timeit, one batch of {BATCH} spans"
    encoders: list[tuple[str, Callable[[], Any]]] = [
        ("encode: Python twin (_encoder_py)", lambda: _encoder_py.encode_spans(spans)),
        (
            "encode: stock encoder (pb2 objects, SerializeToString)",
            lambda: encode_spans(spans).SerializeToString(),
        ),
    ]
    native = _core.load("hooktel.otel.export.encoder")
    if native is not None:
        encoders.insert(0, ("encode: native (_encoder.c)", lambda: native.encode_spans(spans)))
    return [ExportCost(what, *_time(call, BATCH, seconds, repeats), how) for what, call in encoders]


def measure_export_costs(seconds: float, repeats: int) -> list[ExportCost]:
    return [
        handover(seconds, repeats),
        request_span(seconds, repeats, native_processor=True),
        request_span(seconds, repeats, native_processor=False),
        *encoding(seconds, repeats),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.2, help="per timing (0.2)")
    parser.add_argument("--repeats", type=int, default=7, help="timings per figure (7)")
    args = parser.parse_args()
    print(exportcost_table(measure_export_costs(args.seconds, args.repeats)))


if __name__ == "__main__":
    main()
