"""What each step measures, as plain records: the measuring modules make them, `report`,
`targets` and `chart` read them, and `as_dict()` is what the JSON keeps.

They live apart from the code that measures so that reading results never imports a
measurement (and its apps, variants and SDK setup) back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class Result:
    """A result record; its JSON form is its fields."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class InprocessResult(Result):
    app: str
    variant: str
    bare_ns: float  # median ns per request, bare app
    variant_ns: float  # median ns per request, with the variant
    added_ns: float  # median over repeats of (variant - bare)
    added_ns_spread: tuple[float, float]  # min and max of (variant - bare) over repeats
    added_ns_iqr: float  # interquartile range of (variant - bare): what this run can resolve
    calls_per_timing: int
    repeats: int


@dataclass(frozen=True)
class ProfileLine(Result):
    function: str  # file:line(name)
    calls_per_request: float
    own_ns_per_request: float  # tottime, profiler overhead included
    cumulative_ns_per_request: float


@dataclass(frozen=True)
class ProfileFile(Result):
    file: str  # `hooktel/asgi.py`; `(C)` for built-in functions and methods
    own_ns_per_request: float
    share: float  # of the profiled path's own time


@dataclass(frozen=True)
class SpanCost(Result):
    path: str
    us: float  # median µs per span (per request for the request paths)
    iqr_us: float  # interquartile range over the timings
    how: str


@dataclass(frozen=True)
class MetricCost(Result):
    path: str
    ns: float  # median ns per request (added ns for the `+ metrics` rows)
    iqr_ns: float
    how: str


@dataclass(frozen=True)
class ExportCost(Result):
    what: str
    ns: float  # median ns per span
    iqr_ns: float
    how: str


@dataclass(frozen=True)
class MemoryResult(Result):
    app: str
    variant: str
    requests: int
    checkpoint: int  # growth is measured from this request to the last one
    rss_growth_bytes: int
    tracemalloc_growth_bytes: int
    top_growth: list[str]  # tracemalloc's largest line-level differences, when any


@dataclass(frozen=True)
class SpanCountResult(Result):
    app: str
    requests: int
    max_queue_size: int
    received: int  # spans the receiver decoded
    distinct: int  # distinct span ids among them
    sdk_exported: int  # otel.sdk.processor.span.processed, no error.type
    sdk_dropped: int  # otel.sdk.processor.span.processed, error.type=queue_full
    queue_full_logs: int  # "Queue full, dropping Span." records (deduplicated by the SDK)
    seconds: float  # driving the requests
    flush_seconds: float  # shutting the provider down: the rest of the queue exported

    @property
    def unaccounted(self) -> int:
        """Spans neither received nor counted as dropped (negative: drops counted twice)."""
        return self.requests - self.received - self.sdk_dropped

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "unaccounted": self.unaccounted}


@dataclass(frozen=True)
class WrkResult(Result):
    requests_per_sec: float
    requests: int
    p50_us: float
    p99_us: float
    socket_errors: int  # connect + read + write + timeout
    non_2xx: int


@dataclass(frozen=True)
class OtlpCheck(Result):
    """What the receiver got from one server run, against what wrk was served."""

    served: int  # wrk's completed requests, warm-up included, plus the readiness probe
    received: int  # spans the receiver counted from this server, after it stopped
    receiver_cpu_us: float  # the receiver's CPU per measured request


@dataclass(frozen=True)
class LoadRun(Result):
    round: int
    server: str
    variant: str  # `variant@source` when a run compares snapshots (`--source`)
    result: WrkResult | None  # None when the server or wrk failed
    server_cpu_us: float = 0.0  # server CPU time per request, user + system
    error: str | None = None
    otlp: OtlpCheck | None = None  # variants that export to the receiver


@dataclass(frozen=True)
class LoadSummary(Result):
    server: str
    variant: str
    ratio: float | None  # median over rounds of throughput / bare throughput, same round
    ratios: list[float]
    requests_per_sec: float
    p50_us: float
    p99_us: float
    server_cpu_us: float  # median server CPU per request
    cpu_ratio: float | None  # median over rounds of bare CPU / variant CPU per request
    rounds_ok: int
    rounds: int


@dataclass(frozen=True)
class Target(Result):
    name: str
    wanted: str
    reached: str
    met: bool | None  # None: not measured, or not resolvable, in this run
