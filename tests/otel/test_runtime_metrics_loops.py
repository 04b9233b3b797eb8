"""The asyncio loop delay: a blocked loop shows it, an idle one is woken only a few times a
second, and loops started later, in other threads, replaced, closed, stopped or uvloop's
are each measured (or forgotten) as they should be, with nothing raised or kept."""

from __future__ import annotations

import asyncio
import gc
import selectors
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from hooktel.otel import RuntimeMetrics

DELAY = "asyncio.eventloop.delay.max"


class Delays:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def collect(self) -> dict[str, float]:
        """The delay per loop, by the name of the thread running it."""
        data = self.reader.get_metrics_data()
        found: dict[str, float] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == DELAY:
                        for point in metric.data.data_points:
                            found[str(point.attributes["thread.name"])] = point.value
        return found


@pytest.fixture
def delays() -> Iterator[Delays]:
    delays = Delays()
    instrumentation = RuntimeMetrics()
    instrumentation.uninstrument()
    instrumentation.instrument(meter_provider=delays.provider, loop_delay_interval=0.05)
    try:
        yield delays
    finally:
        instrumentation.uninstrument()
        delays.provider.shutdown()


def test_a_blocked_loop_shows_its_delay(delays: Delays) -> None:
    async def blocked() -> tuple[dict[str, float], dict[str, float]]:
        await asyncio.sleep(0.2)
        calm = delays.collect()
        time.sleep(0.5)  # a CPU-bound handler, say
        await asyncio.sleep(0.1)
        return calm, delays.collect()

    calm, after = asyncio.run(blocked())
    assert calm["MainThread"] < 0.2
    assert 0.4 < after["MainThread"] < 2.0


def test_a_loop_blocked_now_shows_it_at_collection(delays: Delays) -> None:
    async def blocked() -> dict[str, float]:
        await asyncio.sleep(0.2)
        delays.collect()
        time.sleep(0.4)  # the probe due meanwhile has not run: the reading sees it waiting
        return delays.collect()

    assert asyncio.run(blocked())["MainThread"] > 0.3


class CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Counts the loop's wake-ups: each `select` that may sleep (a poll does not) and
    returns is one."""

    wakeups = 0

    def select(self, timeout: float | None = None) -> Any:
        if timeout is None or timeout > 0:
            CountingSelector.wakeups += 1
        return super().select(timeout)


def test_an_idle_loop_wakes_only_a_few_times_a_second() -> None:
    delays = Delays()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=delays.provider)  # the default interval
    loop = asyncio.SelectorEventLoop(CountingSelector())
    try:
        loop.run_until_complete(asyncio.sleep(0.1))  # it starts: the probe starts
        CountingSelector.wakeups = 0
        loop.run_until_complete(asyncio.sleep(2.0))  # idle: only the probe wakes it
        assert 2 * 3 <= CountingSelector.wakeups <= 2 * 5  # four probes a second
    finally:
        loop.close()
        instrumentation.uninstrument()


def test_a_second_loop_in_a_thread(delays: Delays) -> None:
    ready, done = threading.Event(), threading.Event()

    async def other() -> None:
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(other(),), name="second-loop")
    thread.start()

    async def main() -> dict[str, float]:
        ready.wait()
        await asyncio.sleep(0.3)
        return delays.collect()

    try:
        found = asyncio.run(main())
    finally:
        done.set()
        thread.join()
    assert set(found) == {"MainThread", "second-loop"}


def test_a_replaced_loop_is_forgotten_and_not_kept(delays: Delays) -> None:
    first = asyncio.new_event_loop()
    first.run_until_complete(asyncio.sleep(0.1))
    first.close()
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None

    async def second() -> dict[str, float]:
        await asyncio.sleep(0.2)
        return delays.collect()

    assert list(asyncio.run(second())) == ["MainThread"]  # the second loop only


def test_a_stopped_loop_is_not_late_for_the_time_it_was_stopped(delays: Delays) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0.1))
        time.sleep(0.5)  # stopped, not blocked: its probe waits

        async def then() -> dict[str, float]:
            await asyncio.sleep(0.2)
            return delays.collect()

        assert loop.run_until_complete(then())["MainThread"] < 0.3
    finally:
        loop.close()


def test_uninstrument_while_a_loop_runs_in_another_thread() -> None:
    delays = Delays()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=delays.provider, loop_delay_interval=0.01)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        time.sleep(0.1)
        instrumentation.uninstrument()
        time.sleep(0.1)
        assert not [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_uvloop_when_instrumented_inside_it() -> None:
    uvloop = pytest.importorskip("uvloop")
    delays = Delays()
    instrumentation = RuntimeMetrics()

    async def main() -> dict[str, float]:
        instrumentation.instrument(meter_provider=delays.provider, loop_delay_interval=0.05)
        await asyncio.sleep(0.2)
        time.sleep(0.4)
        await asyncio.sleep(0.1)
        return delays.collect()

    try:
        found = uvloop.run(main())
    finally:
        instrumentation.uninstrument()
    assert 0.3 < found["MainThread"] < 2.0


UVLOOP_LATER = """
import asyncio, time
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from hooktel.otel import RuntimeMetrics
reader = InMemoryMetricReader()
provider = MeterProvider(metric_readers=[reader])
RuntimeMetrics().instrument(meter_provider=provider, loop_delay_interval=0.05)
import uvloop  # after: it binds the wrapped _set_running_loop

async def main():
    await asyncio.sleep(0.3)
    time.sleep(0.5)
    await asyncio.sleep(0.3)
    for metric in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics:
        if metric.name == "asyncio.eventloop.delay.max":
            print(type(asyncio.get_running_loop()).__module__, metric.data.data_points[0].value)

uvloop.run(main())
"""


def test_uvloop_imported_after_instrumenting() -> None:
    pytest.importorskip("uvloop")
    result = subprocess.run(
        [sys.executable, "-c", UVLOOP_LATER], capture_output=True, text=True, timeout=60, check=True
    )
    module, delay = result.stdout.split()
    assert module == "uvloop" and 0.4 < float(delay) < 2.0


def test_a_wrapper_left_in_a_chain_watches_nothing() -> None:
    """Another wrapper of `_set_running_loop` installed after hooktel's keeps it in its
    chain when hooktel uninstruments: it must watch no loop then."""
    delays = Delays()
    instrumentation = RuntimeMetrics()
    instrumentation.instrument(meter_provider=delays.provider, loop_delay_interval=0.01)
    ours = asyncio.events._set_running_loop

    def another_wrapper(loop: Any) -> None:
        ours(loop)

    asyncio.events._set_running_loop = another_wrapper
    try:
        instrumentation.uninstrument()

        async def probes_pending() -> list[Any]:
            await asyncio.sleep(0.05)
            scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
            return [h for h in scheduled if not h.cancelled()]

        assert asyncio.run(probes_pending()) == []
    finally:
        asyncio.events._set_running_loop = asyncio._set_running_loop  # type: ignore[attr-defined]
