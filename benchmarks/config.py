"""What a run does: the mode (full or quick), the command line, and what each step covers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .load import LoadSettings
from .servers import ROOT, SERVERS, Server
from .source import installed_package
from .spancount import DEFAULT_QUEUE
from .variants import BASELINE, HOOKTEL_OTEL, VARIANTS, Variant

STEPS = ("inprocess", "spancost", "metriccost", "exportcost", "memory", "spans", "profile", "load")
RESULTS_DIR = ROOT / "benchmarks" / "results"

# (app, variant) pairs of the memory and profile steps, for the apps a run serves.
MEMORY_PLAN = (
    ("raw-asgi", "hooktel-noop"),  # the hook points
    ("raw-wsgi", "hooktel-noop"),
    ("http-hello", "hooktel-noop"),
    ("starlette", HOOKTEL_OTEL),  # traced requests, spans through the SDK
    ("raw-asgi", HOOKTEL_OTEL),
)
PROFILE_PLAN = (
    ("raw-asgi", HOOKTEL_OTEL),
    ("starlette", HOOKTEL_OTEL),
    ("raw-wsgi", HOOKTEL_OTEL),
    ("flask", HOOKTEL_OTEL),
)


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
    spans_requests: int  # the OTLP span-count step
    spans_small_queue: int  # the queue that is too small for the burst
    processor_spans: int  # spans through OTLPSpanProcessor in the memory step
    parallel: int  # load runs at a time (quick: 2, as it measures nothing)


MODES = {
    "quick": Mode("quick", 1, 1, 0, 0.01, 2, 5_000, 500, 5_000, 256, 20_000, 2),
    "full": Mode("full", 3, 10, 1, 0.2, 15, 100_000, 20_000, 100_000, DEFAULT_QUEUE, 1_000_000, 1),
}


@dataclass(frozen=True)
class Config:
    mode: Mode
    servers: list[Server]
    variants: list[Variant]
    apps: list[str]
    steps: list[str]
    load: LoadSettings
    sources: dict[str, Path]  # hooktel packages measured, by name ("": the installed one)
    results_dir: Path
    chart: Path | None  # None: the results directory, named like the results


def _names(text: str, known: dict[str, Any], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: Sequence[str] | None, description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=description)
    parser.add_argument("--quick", action="store_true", help="1 round, 1 s per variant")
    parser.add_argument("--rounds", type=int, help="load rounds (full: 3)")
    parser.add_argument("--seconds", type=int, help="wrk seconds per variant (full: 10)")
    parser.add_argument("--warmup", type=int, help="wrk warm-up seconds, not measured (full: 1)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated")
    parser.add_argument(
        "--source",
        action="append",
        metavar="NAME=PATH",
        help="load-test the hooktel package in PATH (a directory holding `hooktel`, such as "
        "another checkout's src) as NAME; repeat to run snapshots side by side in the same "
        "rounds (runs named variant@NAME; the other steps measure the first)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--chart", type=Path, help="PNG path (default: next to the results)")
    return parser.parse_args(argv)


def _sources(given: list[str] | None) -> dict[str, Path]:
    if not given:
        return {"": installed_package()}
    sources = {}
    for text in given:
        name, _, path = text.partition("=")
        package = Path(path) / "hooktel"
        if not name or "@" in name or name in sources or not (package / "__init__.py").is_file():
            raise SystemExit(
                f"--source {text}: wanted a new NAME (no @) = a directory with hooktel/"
            )
        sources[name] = package.resolve()
    return sources


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
            parallel=mode.parallel,
        ),
        sources=_sources(args.source),
        results_dir=args.results_dir,
        chart=args.chart,
    )
