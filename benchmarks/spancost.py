"""Per-span cost in µs, in-process: hooktel's request path against one plain SDK span.

The reference is what any instrumentation pays at least for one span through
the API: `tracer.start_span(name, kind=SERVER, attributes=<10 attributes>)`
then `span.end()`, with the same provider setup as every traced variant
(`otelsdk.tracer_provider`). hooktel's figures come from the in-process step
(`inprocess.measure`): a whole request through the ASGI/WSGI hook point with
`HttpInstrumentation` attached, minus the bare request; the hook layer alone
is the same request with one no-op instrument; the span bridge is the
difference of the two.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from opentelemetry.trace import SpanKind

from .inprocess import calls_for, iqr
from .otelsdk import tracer_provider
from .results import InprocessResult, SpanCost

# What a server span of `GET /` carries (the attributes hooktel sets on one).
ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "url.path": "/",
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "network.protocol.version": "1.1",
    "network.peer.address": "127.0.0.1",
    "network.peer.port": 50000,
    "client.address": "127.0.0.1",
    "http.response.status_code": 200,
}
SDK_SPAN = "SDK tracer.start_span() + end(), 10 attributes"


def measure_sdk_span(seconds: float, repeats: int) -> SpanCost:
    """Median µs of one `start_span` + `end` over `repeats` timings of ~`seconds` each."""
    with ExitStack() as stack:
        tracer = tracer_provider(stack).get_tracer("hooktel-bench")

        def one_span() -> None:
            tracer.start_span("GET", kind=SpanKind.SERVER, attributes=ATTRIBUTES).end()

        timer = timeit.Timer(one_span)
        number = calls_for(one_span, seconds)
        timings = [timer.timeit(number) / number * 1e6 for _ in range(repeats)]
    return SpanCost(SDK_SPAN, statistics.median(timings), iqr(timings), "timeit, same provider")


# (app, variant, label) of the in-process results shown as per-span costs.
FROM_INPROCESS = (
    ("raw-asgi", "hooktel-otel", "hooktel HttpInstrumentation, fast path (ASGI request)"),
    ("raw-asgi", "hooktel-noop", "hook layer alone: ASGI hook point + one no-op instrument"),
    ("raw-asgi", "otel-contrib", "contrib asgi OpenTelemetryMiddleware + SDK (ASGI request)"),
    ("raw-asgi", "sdk-floor", "reference: the SDK calls alone, sdk-floor (ASGI request)"),
    ("raw-wsgi", "hooktel-otel", "hooktel HttpInstrumentation, fast path (WSGI request)"),
    ("raw-wsgi", "hooktel-noop", "hook layer alone: WSGI hook point + one no-op instrument"),
    ("raw-wsgi", "otel-contrib", "contrib wsgi OpenTelemetryMiddleware + SDK (WSGI request)"),
    ("raw-wsgi", "sdk-floor", "reference: the SDK calls alone, sdk-floor (WSGI request)"),
)


def span_costs(inprocess: Sequence[InprocessResult], sdk: SpanCost | None) -> list[SpanCost]:
    """The per-span view: the SDK reference, then hooktel's paths and the peer's."""
    found = {(r.app, r.variant): r for r in inprocess}
    rows = [sdk] if sdk is not None else []
    for app, variant, label in FROM_INPROCESS:
        r = found.get((app, variant))
        if r is not None:
            rows.append(SpanCost(label, r.added_ns / 1e3, r.added_ns_iqr / 1e3, f"{app} - bare"))
    for app, interface in (("raw-asgi", "ASGI"), ("raw-wsgi", "WSGI")):
        fast, hooks = found.get((app, "hooktel-otel")), found.get((app, "hooktel-noop"))
        if fast is not None and hooks is not None:
            rows.append(
                SpanCost(
                    f"hooktel span bridge alone, fast path ({interface})",
                    (fast.added_ns - hooks.added_ns) / 1e3,
                    (fast.added_ns_iqr + hooks.added_ns_iqr) / 1e3,
                    "hooktel-otel - hooktel-noop",
                )
            )
    return rows
