"""In-process cost per request in nanoseconds: each variant against the bare app.

wrk cannot resolve a few hundred nanoseconds in a request that takes ~100 µs,
so the cost of a hook point is measured here, by driving the app with
`drivers.DRIVERS` under `timeit`. Bare and variant timings alternate (in
alternating order) so that drift on a shared machine hits both; the figure is
the median over repeats of (variant - bare) for the pair timed together.
"""

from __future__ import annotations

import cProfile
import pstats
import re
import statistics
import timeit
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from .apps import APPS, make
from .drivers import DRIVERS, Call
from .results import InprocessResult, ProfileFile, ProfileLine
from .variants import BASELINE


@contextmanager
def driven(app: str, variant: str) -> Iterator[Call]:
    """A `call()` serving one request of `app` with `variant` applied; undone on exit."""
    with ExitStack() as stack:
        spec = APPS[app]
        call = DRIVERS[spec.interface](make(app, variant, stack), **spec.driver_options)
        call()  # one warm-up request, which also proves the app can be driven
        yield call


def _ns_per_call(app: str, variant: str, number: int) -> float:
    with driven(app, variant) as call:
        return timeit.Timer(call).timeit(number) / number * 1e9


def calls_for(
    call: Callable[[], object], seconds: float, *, start: int = 100, minimum: int = 1000
) -> int:
    """How many calls of `call` take about `seconds`: doubled from `start` until a timing
    takes 20 ms, then scaled (at least `minimum`; a slow call wants both small)."""
    timer = timeit.Timer(call)
    number, elapsed = start, 0.0
    while elapsed < 0.02:
        number *= 2
        elapsed = timer.timeit(number)
    return max(minimum, int(number * seconds / elapsed))


def _calls_for(app: str, variant: str, seconds: float) -> int:
    with driven(app, variant) as call:
        return calls_for(call, seconds)


def measure(app: str, variant: str, seconds: float, repeats: int) -> InprocessResult:
    """Time `variant` against the bare app, `repeats` pairs of ~`seconds` each."""
    number = _calls_for(app, variant, seconds)
    bare: list[float] = []
    varied: list[float] = []
    for i in range(repeats):
        order = (BASELINE, variant) if i % 2 == 0 else (variant, BASELINE)
        for name in order:
            (bare if name == BASELINE else varied).append(_ns_per_call(app, name, number))
    added = [v - b for b, v in zip(bare, varied, strict=True)]
    return InprocessResult(
        app=app,
        variant=variant,
        bare_ns=statistics.median(bare),
        variant_ns=statistics.median(varied),
        added_ns=statistics.median(added),
        added_ns_spread=(min(added), max(added)),
        added_ns_iqr=iqr(added),
        calls_per_timing=number,
        repeats=repeats,
    )


def iqr(values: list[float]) -> float:
    """The interquartile range of `values`: what a run can resolve (infinite from one)."""
    if len(values) < 2:
        return float("inf")
    q1, _q2, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def profile(app: str, variant: str, requests: int) -> list[ProfileLine]:
    """cProfile `requests` requests; every function, by own time per request (most first)."""
    profiler = cProfile.Profile()
    with driven(app, variant) as call:
        profiler.enable()
        for _ in range(requests):
            call()
        profiler.disable()
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    lines = [
        ProfileLine(
            function=f"{_short(file)}:{line}({name})",
            calls_per_request=ncalls / requests,
            own_ns_per_request=tottime / requests * 1e9,
            cumulative_ns_per_request=cumtime / requests * 1e9,
        )
        for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items()
    ]
    lines.sort(key=lambda p: p.own_ns_per_request, reverse=True)
    return lines


def by_file(lines: list[ProfileLine]) -> list[ProfileFile]:
    """Own time summed per source file: which layer the time goes to."""
    totals: dict[str, float] = {}
    for p in lines:
        file = p.function.rsplit(":", 1)[0] if not p.function.startswith("~") else "(C)"
        totals[file] = totals.get(file, 0.0) + p.own_ns_per_request
    whole = sum(totals.values()) or 1.0
    files = [ProfileFile(f, ns, ns / whole) for f, ns in totals.items()]
    files.sort(key=lambda f: f.own_ns_per_request, reverse=True)
    return files


def _short(path: str) -> str:
    """`hooktel/asgi.py`, `http/server.py`: the path from its import root."""
    for marker in ("site-packages/", "/src/", "/benchmarks/", "/hooktel-bench-"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            return rest.split("/", 1)[1] if marker == "/hooktel-bench-" else rest
    stdlib = re.search(r"/lib/python3\.\d+/(.*)$", path)
    return stdlib.group(1) if stdlib else path


def check_reporting(app: str, variant: str, requests: int = 3) -> None:
    """Prove that driving `app` with `variant` reports: every request starts and ends once."""
    import hooktel

    seen = {"start": 0, "end": 0, "error": 0}

    def counter(event: str) -> Any:
        def hook(op_id: int, attrs: Any) -> None:
            seen[event] += 1

        return hook

    counting = hooktel.Instrument(
        kind="http",
        name="bench-check",
        version="1",
        on_operation_start=counter("start"),
        on_operation_end=counter("end"),
        on_operation_error=counter("error"),
    )
    with driven(app, variant) as call, hooktel.attach(counting):
        for _ in range(requests):
            call()
    if seen != {"start": requests, "end": requests, "error": 0}:
        raise RuntimeError(f"{app}/{variant}: {requests} requests driven, hooks saw {seen}")
