"""Load every server with every variant it supports, interleaved over rounds.

Within a round each server runs its variants one after the other, in an
order rotated from round to round (so no variant always runs first or last
on a machine whose load drifts). A variant's ratio is its throughput over the
bare server's throughput in the same round; the summary is the median over
rounds. With several hooktel snapshots (`source.Source`), every variant runs
on each, next to each other in the same round, named `variant@source`; the
ratios are to the first snapshot's bare server, so the other bare servers
show what two identical servers differ by (the noise).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .receiver import Receiver
from .results import LoadRun, LoadSummary, OtlpCheck, WrkResult
from .servers import Server, ServerError, running
from .source import Source
from .variants import BASELINE, Variant, label
from .wrk import WrkError, run_wrk


@dataclass(frozen=True)
class LoadSettings:
    rounds: int
    seconds: int
    warmup_seconds: int
    parallel: int = 1  # server runs at a time: more than one only where nothing is measured


def _pairs(
    server: Server, variants: Sequence[Variant], sources: Sequence[Source]
) -> list[tuple[Variant, Source]]:
    """What `server` runs: each variant that supports the kind of its app, on each snapshot."""
    return [(v, s) for v in variants if v.supports(server.kind) for s in sources]


def plan(
    servers: Sequence[Server], variants: Sequence[Variant], sources: Sequence[Source]
) -> dict[str, list[str]]:
    """The load runs of each server, by name (`variant@source` with several snapshots)."""
    return {
        server.name: [label(v.name, s.name) for v, s in _pairs(server, variants, sources)]
        for server in servers
    }


def baseline(sources: Sequence[Source]) -> str:
    """What ratios are to: the bare server (on the first snapshot)."""
    return label(BASELINE, sources[0].name)


def _rotated(names: list[tuple[Variant, Source]], by: int) -> list[tuple[Variant, Source]]:
    by %= max(len(names), 1)
    return names[by:] + names[:by]


def measure_once(
    server: Server,
    variant: str,
    source: Source,
    settings: LoadSettings,
    receiver: Receiver | None = None,
) -> tuple[WrkResult, float, OtlpCheck | None]:
    """wrk's result, the server's CPU µs per request, and what the receiver got (if any)."""
    spans_before = receiver.spans() if receiver else 0
    served = 1  # the readiness probe
    with running(server, variant, source.path) as live:
        if settings.warmup_seconds:
            warmup = run_wrk(live.url, settings.warmup_seconds)
            served += warmup.requests
        cpu_before = live.cpu_seconds()
        receiver_cpu_before = receiver.cpu_seconds() if receiver else 0.0
        result = run_wrk(live.url, settings.seconds)
        cpu = live.cpu_seconds() - cpu_before
        receiver_cpu = receiver.cpu_seconds() - receiver_cpu_before if receiver else 0.0
    per_request = 1e6 / result.requests if result.requests else 0.0
    check = None
    if receiver is not None:  # the server flushed its spans as it stopped
        served += result.requests
        received = receiver.wait_for(spans_before + served, timeout=30) - spans_before
        check = OtlpCheck(served, received, receiver_cpu * per_request)
    return result, cpu * per_request, check


def run_load(
    servers: Sequence[Server],
    variants: Sequence[Variant],
    sources: Sequence[Source],
    settings: LoadSettings,
    log: Callable[[str], None],
    *,
    receiver: Receiver | None = None,
) -> list[LoadRun]:
    """Every (round, server, variant, snapshot) once; `settings.parallel` at a time."""
    jobs = [
        (round_no, server, variant, source)
        for round_no in range(settings.rounds)
        for server in servers
        for variant, source in _rotated(_pairs(server, variants, sources), round_no)
    ]

    def one(job: tuple[int, Server, Variant, Source]) -> LoadRun:
        round_no, server, variant, source = job
        name = label(variant.name, source.name)
        exports = receiver if variant.needs_receiver else None
        where = f"round {round_no + 1} {server.name:<17} {name:<18}"
        try:
            result, cpu_us, otlp = measure_once(server, variant.name, source, settings, exports)
        except (ServerError, WrkError) as exc:
            log(f"{where} FAILED: {exc}")
            return LoadRun(round_no, server.name, name, None, error=str(exc))
        log(
            f"{where} {result.requests_per_sec:>7.0f} req/s  p50 {result.p50_us / 1e3:5.2f} ms"
            f"  p99 {result.p99_us / 1e3:6.2f} ms  server CPU {cpu_us:6.1f} µs/req"
            + (f"  spans {otlp.received:,}/{otlp.served:,}" if otlp else "")
        )
        return LoadRun(round_no, server.name, name, result, cpu_us, otlp=otlp)

    if settings.parallel <= 1:
        return [one(job) for job in jobs]
    # Only for --quick, which checks that every pair serves and measures nothing.
    with ThreadPoolExecutor(settings.parallel) as pool:
        return list(pool.map(one, jobs))


def summarize(runs: Sequence[LoadRun], base: str = BASELINE) -> list[LoadSummary]:
    """Per (server, variant): medians over rounds, ratios to the `base` run of the same round."""
    bare = {
        (r.round, r.server): r.result.requests_per_sec
        for r in runs
        if r.variant == base and r.result and r.result.requests_per_sec > 0
    }
    bare_cpu = {
        (r.round, r.server): r.server_cpu_us
        for r in runs
        if r.variant == base and r.result and r.server_cpu_us > 0
    }
    keys = list(dict.fromkeys((r.server, r.variant) for r in runs))
    summaries = []
    for server, variant in keys:
        mine = [r for r in runs if (r.server, r.variant) == (server, variant)]
        ok = [r.result for r in mine if r.result is not None]
        ratios = [
            r.result.requests_per_sec / bare[(r.round, server)]
            for r in mine
            if r.result is not None and (r.round, server) in bare
        ]
        cpu_ratios = [
            bare_cpu[(r.round, server)] / r.server_cpu_us
            for r in mine
            if r.server_cpu_us > 0 and (r.round, server) in bare_cpu
        ]
        summaries.append(
            LoadSummary(
                server=server,
                variant=variant,
                ratio=statistics.median(ratios) if ratios else None,
                ratios=ratios,
                requests_per_sec=_median([x.requests_per_sec for x in ok]),
                p50_us=_median([x.p50_us for x in ok]),
                p99_us=_median([x.p99_us for x in ok]),
                server_cpu_us=_median([r.server_cpu_us for r in mine if r.result is not None]),
                cpu_ratio=statistics.median(cpu_ratios) if cpu_ratios else None,
                rounds_ok=len(ok),
                rounds=len(mine),
            )
        )
    return summaries


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
