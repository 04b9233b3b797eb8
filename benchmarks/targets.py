"""The targets of issue 3, checked against a run's results (reported, never asserted)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .inprocess import InprocessResult
from .load import LoadSummary
from .memory import MemoryResult

IDLE_NS_LIMIT = 100.0
NOOP_RATIO_LIMIT = 0.95
NOOP_RATIO_SERVER = "uvicorn"  # the raw ASGI app under uvicorn
TRACEMALLOC_LIMIT = 16 * 1024  # a leak of one small object per request would be megabytes
RSS_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    wanted: str
    reached: str
    met: bool | None  # None: not measured, or not resolvable, in this run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    inprocess: Sequence[InprocessResult],
    load: Sequence[LoadSummary],
    memory: Sequence[MemoryResult],
) -> list[Target]:
    targets = [_idle_target(r) for r in inprocess if r.variant == "hooktel-idle"]
    noop = [s for s in load if (s.server, s.variant) == (NOOP_RATIO_SERVER, "hooktel-noop")]
    targets.append(
        Target(
            f"one no-op instrument, {NOOP_RATIO_SERVER} raw ASGI",
            f">= {NOOP_RATIO_LIMIT:.2f} of bare throughput",
            f"{noop[0].ratio:.3f} (server CPU ratio {noop[0].cpu_ratio or 0:.3f})"
            if noop and noop[0].ratio is not None
            else "not measured",
            noop[0].ratio >= NOOP_RATIO_LIMIT if noop and noop[0].ratio is not None else None,
        )
    )
    targets.extend(
        Target(
            f"no memory growth, {m.app}",
            f"tracemalloc < {TRACEMALLOC_LIMIT // 1024} KiB, RSS < {RSS_LIMIT // 1024} KiB",
            f"tracemalloc {m.tracemalloc_growth_bytes:+,} B, RSS {m.rss_growth_bytes:+,} B "
            f"over requests {m.checkpoint:,}..{m.requests:,}",
            m.tracemalloc_growth_bytes < TRACEMALLOC_LIMIT and m.rss_growth_bytes < RSS_LIMIT,
        )
        for m in memory
    )
    return targets


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
