"""The project's performance targets, checked against a run's results (never asserted)."""

from __future__ import annotations

from collections.abc import Sequence

from .metriccost import HOOKTEL_ROW
from .results import (
    ExportCost,
    InprocessResult,
    LoadRun,
    LoadSummary,
    MemoryResult,
    MetricCost,
    SpanCountResult,
    Target,
)

# the hook points alone (50 ns since the native core)
IDLE_NS_LIMIT = 50.0
NOOP_RATIO_LIMIT = 0.95
NOOP_RATIO_SERVER = "uvicorn-asgi"
TRACEMALLOC_LIMIT = 16 * 1024  # a leak of one small object per request would be megabytes
RSS_LIMIT = 256 * 1024

# spans through the SDK, uvicorn h11 and gunicorn: (server, variant) -> (minimum ratio, what)
RATIO_TARGETS: dict[tuple[str, str], tuple[float, str]] = {
    ("uvicorn-starlette", "hooktel-otel"): (0.85, "Starlette + HttpInstrumentation, uvicorn"),
    ("uvicorn-asgi", "hooktel-otel"): (0.80, "raw ASGI + HttpInstrumentation, uvicorn"),
    ("gunicorn-wsgi", "hooktel-otel"): (0.90, "raw WSGI + HttpInstrumentation, gunicorn sync"),
    ("uvicorn-starlette", "hooktel-otlp"): (0.75, "Starlette + HttpInstrumentation, OTLP/HTTP"),
}

# the duration metric in-process, and throughput with metrics against tracing alone
# (uvicorn with httptools + uvloop)
METRIC_NS_LIMIT = 1000.0
METRICS_RATIO_SLACK = 0.02
METRICS_PAIR = ("uvicorn-std-starlette", "hooktel-otel-metrics", "hooktel-otel")


# native OTLP export, on uvicorn with httptools + uvloop
EXPORT_SERVER = "uvicorn-std-starlette"
EXPORT_VARIANT, DROP_VARIANT = "hooktel-otlp-native", "hooktel-otel"
EXPORT_RATIO_SLACK = 0.03  # throughput within 0.03 of the drop-exporter variant's ratio
EXPORT_P99_FACTOR = 1.5
PER_SPAN_NS_LIMIT = 1000.0  # the hand-over on the request thread, and native encoding


# with the native core, on uvicorn with httptools + uvloop and on gunicorn sync
CORE_RATIO_TARGETS: dict[tuple[str, str], tuple[float, str]] = {
    ("uvicorn-std-asgi", "hooktel-noop"): (0.95, "one no-op instrument, raw ASGI"),
    ("gunicorn-wsgi", "hooktel-noop"): (0.95, "one no-op instrument, raw WSGI, gunicorn sync"),
    ("uvicorn-std-starlette", "hooktel-otel"): (0.80, "Starlette + HttpInstrumentation"),
    ("uvicorn-std-asgi", "hooktel-otel"): (0.75, "raw ASGI + HttpInstrumentation"),
    ("gunicorn-flask", "hooktel-otel"): (0.92, "Flask + HttpInstrumentation, gunicorn sync"),
    ("uvicorn-std-starlette", "hooktel-otlp-native"): (
        0.85,
        "aim: Starlette, every span exported over OTLP (OTLPSpanProcessor)",
    ),
}
TRACED_NS_LIMIT = 5000.0  # a whole traced request in process (raw ASGI, HttpInstrumentation)


def evaluate(
    inprocess: Sequence[InprocessResult],
    load: Sequence[LoadSummary],
    memory: Sequence[MemoryResult],
    spans: Sequence[SpanCountResult] = (),
    *,
    export_costs: Sequence[ExportCost] = (),
    runs: Sequence[LoadRun] = (),
    metric_costs: Sequence[MetricCost] = (),
) -> list[Target]:
    targets = [_idle_target(r) for r in inprocess if r.variant == "hooktel-idle"]
    targets.append(
        _ratio_target(
            load, (NOOP_RATIO_SERVER, "hooktel-noop"), NOOP_RATIO_LIMIT, "one no-op instrument"
        )
    )
    targets.extend(
        _ratio_target(load, key, limit, what) for key, (limit, what) in RATIO_TARGETS.items()
    )
    targets.extend(_memory_target(m) for m in memory)
    targets.extend(_span_target(s) for s in spans)
    targets.extend(_export_cost_targets(export_costs))
    targets.extend(_export_load_targets(load, runs))
    targets.extend(_metric_cost_target(c) for c in metric_costs if c.path == HOOKTEL_ROW)
    targets.append(_metrics_ratio_target(load))
    targets.extend(
        _ratio_target(load, key, limit, what) for key, (limit, what) in CORE_RATIO_TARGETS.items()
    )
    targets.extend(
        _traced_target(r) for r in inprocess if (r.app, r.variant) == ("raw-asgi", "hooktel-otel")
    )
    return targets


def _metric_cost_target(cost: MetricCost) -> Target:
    return Target(
        "duration metric, in-process (metriccost)",
        f"<= {METRIC_NS_LIMIT:.0f} ns added per request",
        f"{cost.ns:.0f} ns (IQR {cost.iqr_ns:.0f} ns)",
        cost.ns <= METRIC_NS_LIMIT,
    )


def _metrics_ratio_target(load: Sequence[LoadSummary]) -> Target:
    server, with_metrics, tracing = METRICS_PAIR
    ratios = {s.variant: s.ratio for s in load if s.server == server}
    name = f"metrics on top of tracing ({server} {with_metrics})"
    wanted = f"ratio to bare within {METRICS_RATIO_SLACK:.2f} of {tracing}'s"
    found, reference = ratios.get(with_metrics), ratios.get(tracing)
    if found is None or reference is None:
        return Target(name, wanted, "not measured", None)
    return Target(
        name, wanted, f"{found:.3f} vs {reference:.3f}", found >= reference - METRICS_RATIO_SLACK
    )


def _export_cost_targets(costs: Sequence[ExportCost]) -> list[Target]:
    wanted = f"<= {PER_SPAN_NS_LIMIT:,.0f} ns per span"
    return [
        Target(
            c.what,
            wanted,
            f"{c.ns:,.0f} ns (IQR {c.iqr_ns:,.0f})",
            c.ns <= PER_SPAN_NS_LIMIT,
        )
        for c in costs
        if c.what.startswith(("hand-over", "encode: native"))
    ]


def _export_load_targets(load: Sequence[LoadSummary], runs: Sequence[LoadRun]) -> list[Target]:
    found = {(s.server, s.variant): s for s in load}
    native = found.get((EXPORT_SERVER, EXPORT_VARIANT))
    drop = found.get((EXPORT_SERVER, DROP_VARIANT))
    where = f"{EXPORT_SERVER} {EXPORT_VARIANT} vs {DROP_VARIANT}"
    if native is None or drop is None or native.ratio is None or drop.ratio is None:
        return [
            Target(f"OTLP export costs no more than dropping ({where})", "-", "not measured", None)
        ]
    lost = [
        r.otlp.served - r.otlp.received
        for r in runs
        if (r.server, r.variant) == (EXPORT_SERVER, EXPORT_VARIANT) and r.otlp is not None
    ]
    return [
        Target(
            f"OTLP export throughput ({where})",
            f">= drop ratio - {EXPORT_RATIO_SLACK:.2f}",
            f"{native.ratio:.3f} vs {drop.ratio:.3f}",
            native.ratio >= drop.ratio - EXPORT_RATIO_SLACK,
        ),
        Target(
            f"OTLP export p99 ({where})",
            f"<= {EXPORT_P99_FACTOR}x the drop variant's",
            f"{native.p99_us / 1e3:.2f} ms vs {drop.p99_us / 1e3:.2f} ms",
            native.p99_us <= EXPORT_P99_FACTOR * drop.p99_us,
        ),
        Target(
            f"no span lost under load ({EXPORT_SERVER} {EXPORT_VARIANT}, default settings)",
            "received = served, every round",
            f"lost per round: {lost}" if lost else "not measured",
            (max(lost) <= 0) if lost else None,
        ),
    ]


def _ratio_target(
    load: Sequence[LoadSummary], key: tuple[str, str], limit: float, what: str
) -> Target:
    found = [s for s in load if (s.server, s.variant) == key]
    name = f"{what} ({key[0]} {key[1]})"
    wanted = f">= {limit:.2f} of bare throughput"
    ratio = found[0].ratio if found else None
    if ratio is None:
        return Target(name, wanted, "not measured", None)
    reached = f"{ratio:.3f} (server CPU ratio {found[0].cpu_ratio or 0:.3f})"
    return Target(name, wanted, reached, ratio >= limit)


def _memory_target(m: MemoryResult) -> Target:
    return Target(
        f"no memory growth, {m.app} {m.variant}",
        f"tracemalloc < {TRACEMALLOC_LIMIT // 1024} KiB, RSS < {RSS_LIMIT // 1024} KiB",
        f"tracemalloc {m.tracemalloc_growth_bytes:+,} B, RSS {m.rss_growth_bytes:+,} B "
        f"over requests {m.checkpoint:,}..{m.requests:,}",
        m.tracemalloc_growth_bytes < TRACEMALLOC_LIMIT and m.rss_growth_bytes < RSS_LIMIT,
    )


def _span_target(s: SpanCountResult) -> Target:
    what = f"{s.requests:,} requests, OTLP, queue {s.max_queue_size:,}"
    if s.max_queue_size >= s.requests:
        return Target(
            f"no span lost ({what})",
            f"the receiver counts exactly {s.requests:,} distinct spans",
            f"{s.received:,} received, {s.distinct:,} distinct; SDK dropped {s.sdk_dropped:,}",
            s.received == s.distinct == s.requests,
        )
    lost = s.requests - s.received
    reached = (
        f"{s.received:,} received, {lost:,} lost; SDK: {s.sdk_exported:,} exported, "
        f"{s.sdk_dropped:,} dropped (queue_full)"
    )
    if s.sdk_dropped > lost:
        # BatchProcessor.emit counts a drop when it finds the queue full, but its
        # worker may pop a batch before the span goes in: then nothing is dropped.
        reached += f", {s.sdk_dropped - lost:,} more than lost (race in the SDK's count)"
    name = f"drops accounted ({what})"
    wanted = "SDK counts: exported = received, dropped >= lost"
    if lost == 0:
        return Target(name, wanted, reached + ": nothing was dropped", None)
    return Target(name, wanted, reached, s.sdk_exported == s.received and s.sdk_dropped >= lost)


def _traced_target(r: InprocessResult) -> Target:
    return Target(
        f"a whole traced request in process, {r.app} {r.variant}",
        f"<= {TRACED_NS_LIMIT:,.0f} ns added per request",
        f"{r.added_ns:,.0f} ns (IQR {r.added_ns_iqr:,.0f} ns)",
        r.added_ns <= TRACED_NS_LIMIT,
    )


def _idle_target(r: InprocessResult) -> Target:
    """Met or missed only when the paired timings can resolve the limit (IQR <= 2x limit)."""
    reached = f"{r.added_ns:.0f} ns (IQR {r.added_ns_iqr:.0f} ns)"
    if r.added_ns_iqr > 2 * IDLE_NS_LIMIT:
        return Target(
            f"nothing attached, {r.app}",
            f"<= {IDLE_NS_LIMIT:.0f} ns added per request",
            reached + ": too noisy to resolve",
            None,
        )
    return Target(
        f"nothing attached, {r.app}",
        f"<= {IDLE_NS_LIMIT:.0f} ns added per request",
        reached,
        r.added_ns <= IDLE_NS_LIMIT,
    )
