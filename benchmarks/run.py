"""Run the benchmark: `python -m benchmarks.run` (full) or `python -m benchmarks.run --quick`.

Steps, in order: in-process cost per request (ns) of every variant, the cost
of one SDK span next to hooktel's (µs), memory growth over many requests,
spans counted by an OTLP receiver in another process, profiles of the traced
path, then every server under wrk load, variants interleaved over rounds,
and a chart of the throughput ratios. Prints the tables and the targets;
writes everything as JSON (and the tables as Markdown) to
`benchmarks/results/`. Exits non-zero only when something failed to run,
never because a target was missed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from . import chart, machine, report
from .apps import APPS
from .config import MEMORY_PLAN, PROFILE_PLAN, Config, Mode, configure, parse_args
from .exportcost import measure_export_costs
from .inprocess import by_file, check_reporting, measure, profile
from .load import baseline, plan, run_load, summarize
from .memory import measure_memory, measure_processor_memory
from .metriccost import measure_metric_costs
from .receiver import Receiver, receiving
from .results import (
    ExportCost,
    InprocessResult,
    LoadRun,
    LoadSummary,
    MemoryResult,
    MetricCost,
    ProfileFile,
    SpanCost,
    SpanCountResult,
)
from .servers import stop_all
from .source import Source, git_state, snapshot_hooktel
from .spancost import measure_sdk_span, span_costs
from .spancount import count_spans
from .targets import RATIO_TARGETS, evaluate
from .variants import (
    BASELINE,
    DD_AGENT_ENV,
    HOOKTEL_OTEL,
    OTLP_ENDPOINT_ENV,
    VARIANTS,
    Variant,
)
from .wrk import LOAD, wrk_path


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through `finally`: servers are stopped


def _checked_variant(app: str) -> str:
    """The variant that proves the in-process driver reports for `app`."""
    return "hooktel-noop" if VARIANTS["hooktel-noop"].supports(APPS[app].kind) else HOOKTEL_OTEL


def run_inprocess(apps: list[str], variants: list[Variant], mode: Mode) -> list[InprocessResult]:
    results = []
    interfaces = {APPS[app].interface for app in apps}
    extra = [n for n, s in APPS.items() if s.inprocess_only and s.interface in interfaces]
    for app in apps + extra:
        if not APPS[app].inprocess_only:
            check_reporting(app, _checked_variant(app))
        for variant in variants:
            if (
                variant.name == BASELINE
                or variant.needs_receiver
                or variant.needs_agent
                or not variant.supports(APPS[app].kind)
            ):
                continue
            result = measure(app, variant.name, mode.inprocess_seconds, mode.inprocess_repeats)
            log(f"in-process {app:<10} {variant.name:<18} {result.added_ns:>9,.0f} ns added")
            results.append(result)
    return results


def run_memory(apps: list[str], requests: int, processor_spans: int) -> list[MemoryResult]:
    results = []
    if processor_spans:
        result = measure_processor_memory(processor_spans)
        log(
            f"memory OTLPSpanProcessor, {processor_spans:,} spans: RSS "
            f"{result.rss_growth_bytes:+,} B, tracemalloc {result.tracemalloc_growth_bytes:+,} B"
        )
        results.append(result)
    for app, variant in MEMORY_PLAN:
        if app not in apps:
            continue
        result = measure_memory(app, variant, requests)
        log(
            f"memory {app:<10} {variant:<13} RSS {result.rss_growth_bytes:+,} B, "
            f"tracemalloc {result.tracemalloc_growth_bytes:+,} B"
        )
        results.append(result)
    return results


def run_spans(requests: int, small_queue: int) -> list[SpanCountResult]:
    results = []
    for queue in (requests, small_queue):
        result = count_spans(requests, queue)
        log(
            f"spans: {requests:,} requests, queue {queue:,}: {result.received:,} received, "
            f"SDK dropped {result.sdk_dropped:,}, unaccounted {result.unaccounted:+,}"
        )
        results.append(result)
    return results


@contextlib.contextmanager
def _receiver_if_needed(variants: Sequence[str]) -> Iterator[Receiver | None]:
    """An OTLP receiver and a stand-in Datadog agent for the load step, where variants
    need them (where they listen, in the servers' environment)."""
    with contextlib.ExitStack() as stack:
        if any(VARIANTS[v].needs_agent for v in variants):
            agent = stack.enter_context(receiving(datadog=True))
            stack.enter_context(_set_env(DD_AGENT_ENV, agent.url))
        if not any(VARIANTS[v].needs_receiver for v in variants):
            yield None
            return
        receiver = stack.enter_context(receiving())
        stack.enter_context(_set_env(OTLP_ENDPOINT_ENV, receiver.endpoint))
        yield receiver


@contextlib.contextmanager
def _set_env(name: str, value: str) -> Iterator[None]:
    os.environ[name] = value
    try:
        yield
    finally:
        del os.environ[name]


@dataclass
class Outcome:
    data: dict[str, Any]
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # title, text, markdown
    inprocess: list[InprocessResult] = field(default_factory=list)
    sdk_span: SpanCost | None = None
    metric_costs: list[MetricCost] = field(default_factory=list)
    export_costs: list[ExportCost] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    spans: list[SpanCountResult] = field(default_factory=list)
    runs: list[LoadRun] = field(default_factory=list)
    load: list[LoadSummary] = field(default_factory=list)
    failed_runs: int = 0

    def add(self, title: str, render: Any, items: Any) -> None:
        self.sections.append((title, render(items), render(items, markdown=True)))


def run_export_costs(mode: Mode, out: Outcome) -> None:
    out.export_costs = measure_export_costs(mode.inprocess_seconds, mode.inprocess_repeats)
    for cost in out.export_costs:
        log(f"export cost: {cost.what}: {cost.ns:,.0f} ns/span")
    out.data["exportcost"] = [c.as_dict() for c in out.export_costs]
    title = "OTLP export cost per span, in process (ns)"
    out.add(title, report.exportcost_table, out.export_costs)


def run_steps(config: Config, sources: list[Source], out: Outcome) -> None:
    mode = config.mode
    if "inprocess" in config.steps:
        out.inprocess = run_inprocess(config.apps, config.variants, mode)
        out.data["inprocess"] = [r.as_dict() for r in out.inprocess]
        out.add("In-process cost per request", report.inprocess_table, out.inprocess)
    if "spancost" in config.steps:
        out.sdk_span = measure_sdk_span(mode.inprocess_seconds, mode.inprocess_repeats)
        log(f"SDK span: {out.sdk_span.us:.2f} µs")
    costs = span_costs(out.inprocess, out.sdk_span)
    if costs:
        out.data["spancost"] = [c.as_dict() for c in costs]
        out.add("Per-span cost in-process (µs)", report.spancost_table, costs)
    if "metriccost" in config.steps:
        run_metric_costs(mode, out)
    if "exportcost" in config.steps:
        run_export_costs(mode, out)
    if "memory" in config.steps:
        out.memory = run_memory(config.apps, mode.memory_requests, mode.processor_spans)
        out.data["memory"] = [m.as_dict() for m in out.memory]
        out.add("Memory growth", report.memory_table, out.memory)
    if "spans" in config.steps:
        out.spans = run_spans(mode.spans_requests, mode.spans_small_queue)
        out.data["spans"] = [s.as_dict() for s in out.spans]
        out.add("Spans through OTLP/HTTP to a receiver process", report.spancount_table, out.spans)
    if "profile" in config.steps:
        run_profile(config, out)
    if "load" in config.steps:
        run_load_step(config, sources, out)


def run_profile(config: Config, out: Outcome) -> None:
    out.data["profile"] = {}
    files: list[tuple[str, ProfileFile]] = []
    for app, variant in PROFILE_PLAN:
        if app not in config.apps:
            continue
        lines = profile(app, variant, config.mode.profile_requests)
        out.data["profile"][f"{app}/{variant}"] = [line.as_dict() for line in lines[:40]]
        title = f"Profile, {app} with {variant} (cProfile, top own time)"
        out.add(title, report.profile_table, lines[:15])
        files.extend((f"{app} {variant}", f) for f in by_file(lines)[:8])
    if files:
        out.data["profile_files"] = [(path, f.as_dict()) for path, f in files]
        out.add("Profile by file (own time)", report.profile_files_table, files)


def run_metric_costs(mode: Mode, out: Outcome) -> None:
    out.metric_costs = measure_metric_costs(mode.inprocess_seconds, mode.inprocess_repeats)
    out.data["metriccost"] = [c.as_dict() for c in out.metric_costs]
    out.add("Duration metric cost in-process (ns)", report.metriccost_table, out.metric_costs)


def run_load_step(config: Config, sources: list[Source], out: Outcome) -> None:
    settings = config.load
    planned = {v.name for v in config.variants if any(v.supports(s.kind) for s in config.servers)}
    with _receiver_if_needed(sorted(planned)) as receiver:
        out.runs = run_load(
            config.servers, config.variants, sources, settings, log, receiver=receiver
        )
    out.failed_runs = sum(1 for r in out.runs if r.result is None or r.result.requests_per_sec <= 0)
    out.data["baseline"] = baseline(sources)
    out.load = summarize(out.runs, out.data["baseline"])
    out.data["load"] = {
        "runs": [r.as_dict() for r in out.runs],
        "summary": [s.as_dict() for s in out.load],
    }
    title = (
        f"Throughput: {LOAD} -d{settings.seconds}s, {settings.rounds} round(s), "
        f"median ratio to {out.data['baseline']}"
    )
    out.add(title, report.load_table, out.load)
    if any(r.otlp for r in out.runs):
        out.add("OTLP under load: spans the receiver got", report.otlp_load_table, out.runs)


def _chart(config: Config, out: Outcome, started: str) -> Path | None:
    if not out.load:
        return None
    path = config.chart or config.results_dir / f"{config.mode.name}-{started}.png"
    settings = config.load
    title = (
        f"Throughput with tracing / bare throughput, same round (median of {settings.rounds})\n"
        f"{LOAD} -d{settings.seconds}s, {out.data['machine']['nproc']} cores; "
        f"{_measured(out.data)}, {started}"
    )
    targets = {key: limit for key, (limit, _what) in RATIO_TARGETS.items()}
    return chart.draw(out.load, path, title, targets, out.data["baseline"])


def _measured(data: dict[str, Any], digits: int = 7) -> str:
    """Which hooktel a run measured: `hooktel at 1a2b3c4`, or each snapshot by name."""
    return ", ".join(
        f"{s['name'] or 'hooktel'} at {s['commit'][:digits] or 'unknown commit'}"
        + (" (src/ modified)" if s["src_dirty"] else "")
        for s in data["sources"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, __doc__)
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = configure(args)
    if "load" in config.steps:
        wrk_path()  # fail now, not after the in-process steps
    started = time.strftime("%Y%m%d-%H%M%S")
    data: dict[str, Any] = {
        "mode": config.mode.name,
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.run", *sys.argv[1:]]),
        "started": started,
        "machine": machine.describe(),
        "settings": {"load": asdict(config.load), "mode": asdict(config.mode)},
    }
    out = Outcome(data)
    with tempfile.TemporaryDirectory(prefix="hooktel-bench-") as snapshot:
        sources = snapshot_hooktel(Path(snapshot), config.sources)
        data["sources"] = [
            {"name": s.name, **git_state(s.of), "snapshot_of": str(s.of)} for s in sources
        ]
        data["plan"] = plan(config.servers, config.variants, sources)
        log(f"measuring {_measured(data)}")
        try:
            run_steps(config, sources, out)
        finally:
            stop_all()  # a server or receiver a stopped run left behind
    targets = evaluate(
        out.inprocess,
        out.load,
        out.memory,
        out.spans,
        export_costs=out.export_costs,
        runs=out.runs,
        metric_costs=out.metric_costs,
    )
    data["targets"] = [t.as_dict() for t in targets]
    out.add("Targets", report.targets_table, targets)
    data["machine"]["loadavg_end"] = machine.loadavg()
    chart_path = _chart(config, out, started)
    data["chart"] = str(chart_path) if chart_path else None
    return _write(config, out, started, chart_path)


def _write(config: Config, out: Outcome, started: str, chart_path: Path | None) -> int:
    data = out.data
    for title, text, _markdown in out.sections:
        print(f"\n== {title} ==\n{text}", flush=True)
    path = config.results_dir / f"{config.mode.name}-{started}.json"
    report.write_json(path, data)
    header = f"`{data['command']}`, started {started}; {_measured(data, digits=40)}"
    markdown = "\n\n".join(f"### {title}\n\n{md}" for title, _text, md in out.sections)
    path.with_suffix(".md").write_text(f"{header}\n\n{markdown}\n", encoding="utf-8")
    print(f"\n{header}", flush=True)
    print(f"\nresults: {path} (and .md)", flush=True)
    if chart_path:
        print(f"chart: {chart_path}", flush=True)
    if out.failed_runs:
        log(f"{out.failed_runs} load run(s) failed")
    return 1 if out.failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
