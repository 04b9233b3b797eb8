"""Run the benchmark: `python -m benchmarks.run` (full) or `python -m benchmarks.run --quick`.

Steps, in order: in-process cost per request (ns), memory growth, a profile of
the instrumented path, then every server under wrk load, variants interleaved
over rounds. Prints the tables and the targets; writes everything as JSON
(and the tables as Markdown) to `benchmarks/results/`. Exits non-zero only
when something failed to run, never because a target was missed.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from . import machine, report
from .apps import APPS
from .inprocess import InprocessResult, ProfileLine, check_reporting, measure, profile
from .load import LoadSettings, LoadSummary, plan, run_load, summarize
from .memory import MemoryResult, measure_memory
from .servers import ROOT, SERVERS, Server
from .source import git_state, snapshot_hooktel
from .targets import evaluate
from .variants import BASELINE, VARIANTS, Variant
from .wrk import wrk_path

STEPS = ("inprocess", "memory", "profile", "load")
PROFILED_VARIANT = "hooktel-noop"
RESULTS_DIR = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Mode:
    name: str
    rounds: int
    seconds: int
    warmup_seconds: int
    inprocess_seconds: float  # per timing
    inprocess_repeats: int
    memory_requests: int
    profile_requests: int


MODES = {
    "quick": Mode("quick", 1, 2, 0, 0.03, 3, 20_000, 2_000),
    "full": Mode("full", 3, 10, 1, 0.2, 15, 100_000, 20_000),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _names(text: str, known: dict[str, Any], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s per variant")
    parser.add_argument("--rounds", type=int, help="load rounds (full: 3)")
    parser.add_argument("--seconds", type=int, help="wrk seconds per variant (full: 10)")
    parser.add_argument("--warmup", type=int, help="wrk warm-up seconds, not measured (full: 1)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated")
    parser.add_argument("--memory-requests", type=int, help="full: 100000, quick: 20000")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through `finally`: servers are stopped


def run_inprocess(apps: list[str], variants: list[Variant], mode: Mode) -> list[InprocessResult]:
    results = []
    interfaces = {APPS[app].interface for app in apps}
    extra = [n for n, s in APPS.items() if s.inprocess_only and s.interface in interfaces]
    for app in apps + extra:
        if not APPS[app].inprocess_only:
            check_reporting(app, PROFILED_VARIANT)
        for variant in variants:
            if variant.name == BASELINE or not variant.supports(APPS[app].interface):
                continue
            result = measure(app, variant.name, mode.inprocess_seconds, mode.inprocess_repeats)
            log(f"in-process {app:<10} {variant.name:<19} {result.added_ns:>9,.0f} ns added")
            results.append(result)
    return results


def run_memory(apps: list[str], requests: int) -> list[MemoryResult]:
    results = []
    for app in apps:
        result = measure_memory(app, PROFILED_VARIANT, requests)
        log(
            f"memory {app:<10} RSS {result.rss_growth_bytes:+,} B, "
            f"tracemalloc {result.tracemalloc_growth_bytes:+,} B"
        )
        results.append(result)
    return results


@dataclass(frozen=True)
class Config:
    mode: Mode
    servers: list[Server]
    variants: list[Variant]
    apps: list[str]
    steps: list[str]
    load: LoadSettings
    memory_requests: int
    results_dir: Path


def configure(args: argparse.Namespace) -> Config:
    mode = MODES["quick" if args.quick else "full"]
    servers = [SERVERS[n] for n in _names(args.servers, SERVERS, "server")]
    variants = [VARIANTS[n] for n in _names(args.variants, VARIANTS, "variant")]
    if BASELINE not in {v.name for v in variants}:
        variants.insert(0, VARIANTS[BASELINE])  # ratios need the bare server
    return Config(
        mode=mode,
        servers=servers,
        variants=variants,
        apps=list(dict.fromkeys(s.app for s in servers)),
        steps=_names(args.steps, dict.fromkeys(STEPS), "step"),
        load=LoadSettings(
            rounds=args.rounds or mode.rounds,
            seconds=args.seconds or mode.seconds,
            warmup_seconds=mode.warmup_seconds if args.warmup is None else args.warmup,
            threads=args.threads,
            connections=args.connections,
        ),
        memory_requests=args.memory_requests or mode.memory_requests,
        results_dir=args.results_dir,
    )


@dataclass
class Outcome:
    data: dict[str, Any]
    sections: list[tuple[str, str, str]]  # (title, text table, markdown table)
    inprocess: list[InprocessResult]
    memory: list[MemoryResult]
    load: list[LoadSummary]
    failed_runs: int = 0

    def add(self, title: str, render: Any, items: Any) -> None:
        self.sections.append((title, render(items), render(items, markdown=True)))


def run_steps(config: Config, out: Outcome) -> None:
    mode = config.mode
    if "inprocess" in config.steps:
        out.inprocess = run_inprocess(config.apps, config.variants, mode)
        out.data["inprocess"] = [r.as_dict() for r in out.inprocess]
        out.add("In-process cost per request", report.inprocess_table, out.inprocess)
    if "memory" in config.steps:
        out.memory = run_memory(config.apps, config.memory_requests)
        out.data["memory"] = [m.as_dict() for m in out.memory]
        out.add("Memory growth", report.memory_table, out.memory)
    if "profile" in config.steps:
        out.data["profile"] = {}
        for app in config.apps:
            lines: list[ProfileLine] = profile(app, PROFILED_VARIANT, mode.profile_requests)
            out.data["profile"][app] = [asdict(line) for line in lines]
            title = f"Profile, {app} with {PROFILED_VARIANT} (cProfile, top own time)"
            out.add(title, report.profile_table, lines)
    if "load" in config.steps:
        settings = config.load
        runs = run_load(config.servers, config.variants, settings, log)
        out.failed_runs = sum(1 for r in runs if r.result is None or r.result.requests_per_sec <= 0)
        out.load = summarize(runs)
        out.data["load"] = {
            "runs": [r.as_dict() for r in runs],
            "summary": [s.as_dict() for s in out.load],
        }
        title = (
            f"Throughput: wrk -t{settings.threads} -c{settings.connections} "
            f"-d{settings.seconds}s, {settings.rounds} round(s), median ratio to bare"
        )
        out.add(title, report.load_table, out.load)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = configure(args)
    if "load" in config.steps:
        wrk_path()  # fail now, not after the in-process steps
    started = time.strftime("%Y%m%d-%H%M%S")
    data: dict[str, Any] = {
        "mode": config.mode.name,
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.run", *sys.argv[1:]]),
        "started": started,
        "source": git_state(),
        "machine": machine.describe(),
        "settings": {"load": asdict(config.load), "mode": asdict(config.mode)},
        "plan": plan(config.servers, config.variants),
    }
    out = Outcome(data, [], [], [], [])
    with tempfile.TemporaryDirectory(prefix="hooktel-bench-") as snapshot:
        data["source"]["snapshot_of"] = str(snapshot_hooktel(Path(snapshot)))
        log(f"measuring hooktel as of {data['source']['commit'][:10] or 'unknown commit'}")
        run_steps(config, out)
    targets = evaluate(out.inprocess, out.load, out.memory)
    data["targets"] = [t.as_dict() for t in targets]
    out.add("Targets", report.targets_table, targets)
    data["machine"]["loadavg_end"] = machine.loadavg()

    for title, text, _markdown in out.sections:
        print(f"\n== {title} ==\n{text}", flush=True)
    path = config.results_dir / f"{config.mode.name}-{started}.json"
    report.write_json(path, data)
    source = data["source"]
    header = (
        f"`{data['command']}`, started {started}; hooktel at commit "
        f"{source['commit'] or 'unknown'}{' (src/ modified)' if source['src_dirty'] else ''}"
    )
    markdown = "\n\n".join(f"### {title}\n\n{md}" for title, _text, md in out.sections)
    path.with_suffix(".md").write_text(f"{header}\n\n{markdown}\n", encoding="utf-8")
    print(f"\n{header}", flush=True)
    print(f"\nresults: {path} (and .md)", flush=True)
    if out.failed_runs:
        log(f"{out.failed_runs} load run(s) failed")
    return 1 if out.failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
