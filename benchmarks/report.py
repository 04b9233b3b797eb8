"""Results as text tables (terminal and Markdown) and as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .results import (
    ExportCost,
    InprocessResult,
    LoadRun,
    LoadSummary,
    MemoryResult,
    MetricCost,
    ProfileFile,
    ProfileLine,
    SpanCost,
    SpanCountResult,
    Target,
)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def load_table(summaries: Sequence[LoadSummary], markdown: bool = False) -> str:
    rows = [
        [
            s.server,
            s.variant,
            f"{s.ratio:.3f}" if s.ratio is not None else "-",
            " ".join(f"{r:.2f}" for r in s.ratios) or "-",
            f"{s.requests_per_sec:,.0f}",
            f"{s.p50_us / 1e3:.2f}",
            f"{s.p99_us / 1e3:.2f}",
            f"{s.server_cpu_us:.1f}",
            f"{s.cpu_ratio:.3f}" if s.cpu_ratio is not None else "-",
            f"{s.rounds_ok}/{s.rounds}",
        ]
        for s in summaries
    ]
    headers = [
        "server",
        "variant",
        "ratio",
        "per round",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "CPU ratio",
        "ok",
    ]
    return table(headers, rows, markdown)


def inprocess_table(results: Sequence[InprocessResult], markdown: bool = False) -> str:
    rows = [
        [
            r.app,
            r.variant,
            f"{r.bare_ns:,.0f}",
            f"{r.variant_ns:,.0f}",
            f"{r.added_ns:,.0f}",
            f"{r.added_ns_iqr:,.0f}",
            f"{r.added_ns_spread[0]:,.0f}..{r.added_ns_spread[1]:,.0f}",
        ]
        for r in results
    ]
    headers = ["app", "variant", "bare ns", "variant ns", "added ns", "IQR", "added min..max"]
    return table(headers, rows, markdown)


def exportcost_table(costs: Sequence[ExportCost], markdown: bool = False) -> str:
    rows = [[c.what, f"{c.ns:,.0f}", f"{c.iqr_ns:,.0f}", c.how] for c in costs]
    return table(["per span", "ns", "IQR", "how"], rows, markdown)


def memory_table(results: Sequence[MemoryResult], markdown: bool = False) -> str:
    rows = [
        [
            m.app,
            m.variant,
            f"{m.checkpoint:,}..{m.requests:,}",
            f"{m.rss_growth_bytes:+,}",
            f"{m.tracemalloc_growth_bytes:+,}",
        ]
        for m in results
    ]
    headers = ["app", "variant", "requests", "RSS growth B", "tracemalloc growth B"]
    return table(headers, rows, markdown)


def profile_table(lines: Sequence[ProfileLine], markdown: bool = False) -> str:
    rows = [
        [
            p.function,
            f"{p.calls_per_request:g}",
            f"{p.own_ns_per_request:,.0f}",
            f"{p.cumulative_ns_per_request:,.0f}",
        ]
        for p in lines
    ]
    headers = ["function", "calls/req", "own ns/req", "cum ns/req"]
    return table(headers, rows, markdown)


def spancost_table(costs: Sequence[SpanCost], markdown: bool = False) -> str:
    rows = [[c.path, f"{c.us:.2f}", f"{c.iqr_us:.2f}", c.how] for c in costs]
    return table(["path", "µs per span", "IQR µs", "how"], rows, markdown)


def metriccost_table(costs: Sequence[MetricCost], markdown: bool = False) -> str:
    rows = [[c.path, f"{c.ns:.0f}", f"{c.iqr_ns:.0f}", c.how] for c in costs]
    return table(["path", "ns per request", "IQR ns", "how"], rows, markdown)


def spancount_table(results: Sequence[SpanCountResult], markdown: bool = False) -> str:
    rows = [
        [
            r.app,
            f"{r.requests:,}",
            f"{r.max_queue_size:,}",
            f"{r.received:,}",
            f"{r.distinct:,}",
            f"{r.sdk_exported:,}",
            f"{r.sdk_dropped:,}",
            f"{r.unaccounted:+,}",
            str(r.queue_full_logs),
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    headers = [
        "app",
        "requests",
        "max_queue_size",
        "received",
        "distinct",
        "SDK exported",
        "SDK dropped",
        "unaccounted",
        "queue-full logs",
        "s",
    ]
    return table(headers, rows, markdown)


def otlp_load_table(runs: Sequence[LoadRun], markdown: bool = False) -> str:
    rows = [
        [
            str(r.round + 1),
            r.server,
            r.variant,
            f"{r.otlp.served:,}",
            f"{r.otlp.received:,}",
            f"{r.otlp.receiver_cpu_us:.1f}",
        ]
        for r in runs
        if r.otlp is not None
    ]
    headers = [
        "round",
        "server",
        "variant",
        "requests served",
        "spans received",
        "receiver CPU µs/req",
    ]
    return table(headers, rows, markdown)


def profile_files_table(files: Sequence[tuple[str, ProfileFile]], markdown: bool = False) -> str:
    rows = [[path, f.file, f"{f.own_ns_per_request:,.0f}", f"{f.share:.0%}"] for path, f in files]
    return table(["profiled", "file", "own ns/req", "share"], rows, markdown)


def targets_table(targets: Sequence[Target], markdown: bool = False) -> str:
    verdict = {True: "met", False: "MISSED", None: "-"}
    rows = [[t.name, t.wanted, t.reached, verdict[t.met]] for t in targets]
    return table(["target", "wanted", "reached", ""], rows, markdown)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
