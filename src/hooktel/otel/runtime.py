"""Runtime metrics: the process's memory, CPU time, threads and file descriptors, the
garbage collector, and the delay of each running asyncio event loop.

    from hooktel.otel import RuntimeMetrics
    RuntimeMetrics().instrument(meter_provider=provider)

Every instrument is observable: read when a metric reader collects, nothing in
between, except two things only the moment can see: the garbage collector's pauses
(timed by a `gc.callbacks` entry) and the loop delay (`loopdelay`). Names, units and
attributes are the semantic conventions' where they define one; the two they do not
(`cpython.gc.pause.time`, `asyncio.eventloop.delay.max`) are named in
docs/runtime-metrics.md, with why. The standard library reads all of it on Linux
(`/proc/self`); elsewhere `psutil`, when installed, reads the memory and threads,
and an instrument nothing can read is not created.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Collection, Iterable
from time import perf_counter
from typing import Any

from opentelemetry import metrics
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.metrics import CallbackOptions, Observation

from .. import __version__
from ._sdk import metrics as metrics_seam
from .loopdelay import DEFAULT_INTERVAL, LoopDelay

_NAME = "hooktel.otel.runtime"
# The conventions these names are from: 1.44 (`process.unix.file_descriptor.count`, not
# the older `process.open_file_descriptor.count`; `cpu.mode`, not `process.cpu.state`).
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
GC_GENERATION = "cpython.gc.generation"
CPU_MODE = "cpu.mode"

Reading = Callable[[], "int | None"]


# -- what the process reads of itself


def _proc_rss() -> int | None:
    """Resident set size from /proc/self/statm (its second field, in pages)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _proc_threads() -> int | None:
    """The process's threads (all of them, not only Python's) from /proc/self/stat: the
    18th field after the command name, which is in parentheses and may hold spaces."""
    with open("/proc/self/stat", "rb") as stat:
        return int(stat.read().rpartition(b")")[2].split()[17])


def _fd_directory() -> str | None:
    for directory in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(directory):
            return directory
    return None


def process_readings() -> dict[str, Reading]:
    """`rss`, `threads` and `fds`: each read by the standard library where it can,
    else by psutil where installed, else left out."""
    found: dict[str, Reading] = {}
    if os.path.exists("/proc/self/statm"):
        found["rss"], found["threads"] = _proc_rss, _proc_threads
    else:
        try:
            import psutil  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            pass
        else:
            process = psutil.Process()
            found["rss"] = lambda: int(process.memory_info().rss)
            found["threads"] = lambda: int(process.num_threads())
    directory = _fd_directory()
    if directory is not None:
        # Listing the directory opens one descriptor, which the listing shows: not counted.
        found["fds"] = lambda: len(os.listdir(directory)) - 1
    return found


class GcPauses:
    """Seconds the collector has spent per generation since installed: a `gc.callbacks`
    entry times each collection. It only adds two floats: it runs inside whatever
    allocation set the collection off, perhaps with a lock of the SDK held, so
    recording into an SDK instrument there could deadlock."""

    def __init__(self) -> None:
        self.seconds = [0.0] * len(gc.get_stats())
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = perf_counter()
        elif self._started:
            generation = info.get("generation", 0)
            if 0 <= generation < len(self.seconds):
                self.seconds[generation] += perf_counter() - self._started
            self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self)

    def uninstall(self) -> None:
        while self in gc.callbacks:
            gc.callbacks.remove(self)


# -- the instruments


class Runtime:
    """The instruments of one `RuntimeMetrics` instrumentation, and what they read."""

    def __init__(self, meter: metrics.Meter, loop_delay_interval: float) -> None:
        self._open = True
        self.pauses = GcPauses()
        self.loops = LoopDelay(loop_delay_interval)
        readings = process_readings()
        self._process(meter, readings)
        self._gc(meter)
        meter.create_observable_gauge(
            "asyncio.eventloop.delay.max",
            [self._guarded(self._loop_delays)],
            unit="s",
            description="The longest an asyncio event loop ran a callback late since the "
            "last collection.",
        )
        self.pauses.install()
        self.loops.install()

    def _process(self, meter: metrics.Meter, readings: dict[str, Reading]) -> None:
        meter.create_observable_counter(
            "process.cpu.time",
            [self._guarded(_cpu_times)],
            unit="s",
            description="Total CPU seconds broken down by different CPU modes.",
        )
        for key, name, unit, description in (
            ("rss", "process.memory.usage", "By", "The amount of physical memory in use."),
            ("threads", "process.thread.count", "{thread}", "Process threads count."),
            (
                "fds",
                "process.unix.file_descriptor.count",
                "{file_descriptor}",
                "Number of UNIX file descriptors in use by the process.",
            ),
        ):
            read = readings.get(key)
            if read is not None:
                meter.create_observable_up_down_counter(
                    name, [self._guarded(_single(read))], unit=unit, description=description
                )

    def _gc(self, meter: metrics.Meter) -> None:
        for key, name, unit, description in (
            (
                "collections",
                "cpython.gc.collections",
                "{collection}",
                "The number of times a generation was collected since interpreter start.",
            ),
            (
                "collected",
                "cpython.gc.collected_objects",
                "{object}",
                "The total number of objects collected inside a generation since "
                "interpreter start.",
            ),
            (
                "uncollectable",
                "cpython.gc.uncollectable_objects",
                "{object}",
                "The total number of objects which were found to be uncollectable inside "
                "a generation since interpreter start.",
            ),
        ):
            meter.create_observable_counter(
                name, [self._guarded(_gc_stat(key))], unit=unit, description=description
            )
        meter.create_observable_counter(
            "cpython.gc.pause.time",
            [self._guarded(self._gc_pauses)],
            unit="s",
            description="The time collections of a generation took since instrumented.",
        )

    def _gc_pauses(self) -> Iterable[Observation]:
        for generation, seconds in enumerate(self.pauses.seconds):
            yield Observation(seconds, {GC_GENERATION: generation})

    def _loop_delays(self) -> Iterable[Observation]:
        for delay, attributes in self.loops.readings():
            yield Observation(delay, attributes)

    def _guarded(
        self, read: Callable[[], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """A callback that reads nothing once closed (the SDK cannot take an instrument
        back), and nothing rather than raise into the reader (a file of /proc that could
        not be read, a descriptor limit reached)."""

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if not self._open:
                return []
            try:
                return list(read())
            except Exception:
                return []

        return callback

    def close(self) -> None:
        self._open = False
        self.pauses.uninstall()
        self.loops.uninstall()


def _single(read: Reading) -> Callable[[], Iterable[Observation]]:
    def observe() -> Iterable[Observation]:
        value = read()
        return [] if value is None else [Observation(value)]

    return observe


def _cpu_times() -> Iterable[Observation]:
    times = os.times()
    return [
        Observation(times.user, {CPU_MODE: "user"}),
        Observation(times.system, {CPU_MODE: "system"}),
    ]


def _gc_stat(key: str) -> Callable[[], Iterable[Observation]]:
    def observe() -> Iterable[Observation]:
        return [
            Observation(stats[key], {GC_GENERATION: generation})
            for generation, stats in enumerate(gc.get_stats())
        ]

    return observe


class RuntimeMetrics(BaseInstrumentor):  # type: ignore[misc]
    """The process's runtime metrics, read at each collection of `meter_provider`'s
    readers (default: the global provider; with none configured, nothing is installed).

    `instrument()` options: `meter_provider`, and `loop_delay_interval` (seconds between
    loop-delay probes, default 0.25). Also the `hooktel_runtime` entry point of
    `opentelemetry-instrument`.
    """

    _runtime: Runtime | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("meter_provider") or metrics.get_meter_provider()
        if not metrics_seam.is_configured(provider):
            return
        meter = provider.get_meter(_NAME, __version__, schema_url=_SCHEMA_URL)
        if isinstance(meter, metrics.NoOpMeter):  # a disabled or shut-down SDK
            return
        interval = float(kwargs.get("loop_delay_interval", DEFAULT_INTERVAL))
        self._runtime = Runtime(meter, interval)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._runtime is not None:
            self._runtime.close()
        self._runtime = None
