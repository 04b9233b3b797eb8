"""Runtime metrics: the conventions' names, units and attributes, values that follow the
process, read at collection; nothing installed without a meter provider."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from hooktel.otel import RuntimeMetrics
from hooktel.otel import runtime as runtime_module

Points = dict[str, dict[tuple[tuple[str, Any], ...], float]]

# name: (unit, attribute keys)
CONVENTIONS = {
    "process.cpu.time": ("s", {"cpu.mode"}),
    "process.memory.usage": ("By", set()),
    "process.thread.count": ("{thread}", set()),
    "process.unix.file_descriptor.count": ("{file_descriptor}", set()),
    "cpython.gc.collections": ("{collection}", {"cpython.gc.generation"}),
    "cpython.gc.collected_objects": ("{object}", {"cpython.gc.generation"}),
    "cpython.gc.uncollectable_objects": ("{object}", {"cpython.gc.generation"}),
}
OUR_OWN = {
    "cpython.gc.pause.time": ("s", {"cpython.gc.generation"}),
    "asyncio.eventloop.delay.max": ("s", {"thread.id", "thread.name"}),
}


class Collected:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.units: dict[str, str] = {}

    def collect(self) -> Points:
        points: Points = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "hooktel.otel.runtime"
                for metric in scope.metrics:
                    self.units[metric.name] = metric.unit or ""
                    points[metric.name] = {
                        tuple(sorted(p.attributes.items())): p.value
                        for p in metric.data.data_points
                    }
        return points


@pytest.fixture
def collected() -> Iterator[Collected]:
    collected = Collected()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=collected.provider)
    try:
        yield collected
    finally:
        instrumentation.uninstrument()
        collected.provider.shutdown()


def test_names_units_and_attributes(collected: Collected) -> None:
    async def in_a_loop() -> Points:
        await asyncio.sleep(0.3)  # a probe has run
        return collected.collect()

    points = asyncio.run(in_a_loop())
    for name, (unit, keys) in {**CONVENTIONS, **OUR_OWN}.items():
        assert collected.units[name] == unit, name
        assert points[name], name
        for attributes in points[name]:
            assert {key for key, _ in attributes} == keys, name
    assert set(points["process.cpu.time"]) == {(("cpu.mode", "user"),), (("cpu.mode", "system"),)}
    generations = {(("cpython.gc.generation", g),) for g in range(len(gc.get_stats()))}
    assert set(points["cpython.gc.collections"]) == generations


def single(points: Points, name: str) -> float:
    [value] = points[name].values()
    return value


def test_values_follow_the_process(collected: Collected, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    before = collected.collect()
    files = [open(tmp_path / f"f{n}", "w") for n in range(5)]  # noqa: SIM115
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    sum(i * i for i in range(300_000))  # some CPU time
    cycles = [[] for _ in range(100)]
    for cycle in cycles:
        cycle.append(cycle)
    del cycles, cycle
    gc.collect()
    try:
        after = collected.collect()
        rss = psutil.Process().memory_info().rss
    finally:
        stop.set()
        thread.join()
        for file in files:
            file.close()
    fds = "process.unix.file_descriptor.count"
    # At least: other tests' threads and sockets may come and go in this process meanwhile.
    assert single(after, fds) - single(before, fds) >= 5
    assert single(after, "process.thread.count") - single(before, "process.thread.count") >= 1
    assert abs(single(after, "process.memory.usage") - rss) < rss * 0.1
    cpu = "process.cpu.time"
    assert sum(after[cpu].values()) > sum(before[cpu].values())
    oldest = (("cpython.gc.generation", 2),)
    assert after["cpython.gc.collections"][oldest] >= before["cpython.gc.collections"][oldest] + 1
    collected_objects = after["cpython.gc.collected_objects"][oldest]
    assert collected_objects >= before["cpython.gc.collected_objects"][oldest] + 100
    assert after["cpython.gc.pause.time"][oldest] > before["cpython.gc.pause.time"][oldest]


def test_psutil_reads_what_the_standard_library_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psutil")
    from_proc = runtime_module.process_readings()
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p != "/proc/self/statm" and real_exists(p))
    from_psutil = runtime_module.process_readings()
    assert from_psutil["rss"] is not from_proc["rss"]
    assert from_psutil["threads"]() == from_proc["threads"]()
    rss_psutil, rss_proc = from_psutil["rss"](), from_proc["rss"]()
    assert rss_psutil is not None and rss_proc is not None
    assert abs(rss_psutil - rss_proc) < rss_proc * 0.1


def installed() -> tuple[list[Any], Any]:
    return list(gc.callbacks), asyncio.events._set_running_loop


@pytest.mark.parametrize("provider", [None, NoOpMeterProvider()], ids=["global", "no-op"])
def test_nothing_installed_without_a_meter_provider(provider: Any) -> None:
    before = installed()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=provider)
    try:
        assert installed() == before
    finally:
        instrumentation.uninstrument()


def test_uninstrument_takes_everything_out() -> None:
    before = installed()
    collected = Collected()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=collected.provider)
    assert installed() != before
    instrumentation.uninstrument()
    assert installed() == before
    assert asyncio._set_running_loop is before[1]  # type: ignore[attr-defined]


def test_the_entry_point() -> None:
    [entry] = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "hooktel_runtime"
    ]
    assert entry.load() is RuntimeMetrics


def test_nothing_is_reported_once_uninstrumented() -> None:
    collected = Collected()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=collected.provider)
    assert collected.collect()
    instrumentation.uninstrument()
    assert not any(collected.collect().values())
