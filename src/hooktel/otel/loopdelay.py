"""How late each running asyncio event loop runs a callback it scheduled: the loop delay.

A loop blocked by a CPU-bound handler (or a blocking call) runs everything late; the
delay shows it first. Each watched loop runs a probe: a callback scheduled
`interval` seconds ahead (0.25 s by default: an idle loop wakes four times a second
for it), which notes how late it ran and schedules the next. No thread of its own:
the probe runs in the loop, and the reading at collection takes the worst delay
since the last one, including that of a probe still waiting in a loop blocked now.

Which loops: the one `watch_running()` is called in, and every loop that starts
running while `LoopDelay` is installed: `asyncio.events._set_running_loop`, which
every asyncio loop calls as it starts and stops (and uvloop's, when uvloop is
imported after installing), is wrapped. That is the one internal of asyncio hooktel
uses, and this module its one seam.
A loop is held weakly; a closed one is forgotten.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import threading
import weakref
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

DEFAULT_INTERVAL = 0.25
"""Seconds between probes: a few wake-ups a second of an idle loop, at most."""
# Where `_set_running_loop` is looked up: asyncio's loops call `events`'; uvloop binds
# asyncio's own as it is imported.
_MODULES: tuple[Any, ...] = (asyncio.events, asyncio)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, if one is."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Probe:
    """The probe of one loop. Its state is written in the loop's thread and read (and
    the worst delay reset) in the collecting one, under a lock either takes briefly."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = weakref.ref(loop)  # the loop holds the probe (its timer): not back
        self._interval = interval
        self._lock = threading.Lock()
        self._due: float | None = None  # when the pending probe should run, if one is
        self._worst: float | None = None  # the worst delay since the last reading
        self._latest: float | None = None  # the last probe's, for a reading with none since
        self._timer: asyncio.TimerHandle | None = None
        self._chain = 0  # which start the pending timer belongs to: a stale one ends there
        self.active = False
        self.attributes: dict[str, Any] = {}

    def start(self) -> None:
        """Schedule the first probe, due at once, in the loop's own thread (the wake-up is
        once): how late it runs is the first reading, so a loop that stops within its first
        interval still has one."""
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            self.active = True
            with self._lock:
                self._due = monotonic()
            loop.call_soon_threadsafe(self._first, self._chain)

    def _first(self, chain: int) -> None:
        thread = threading.current_thread()
        self.attributes = {"thread.id": thread.ident or 0, "thread.name": thread.name}
        self._run(chain)

    def _schedule(self) -> None:
        loop = self._loop()
        if loop is None or not self.active:
            return
        with self._lock:
            self._due = monotonic() + self._interval
        self._timer = loop.call_later(self._interval, self._run, self._chain)

    def _run(self, chain: int) -> None:
        now = monotonic()
        with self._lock:
            if self._due is None or chain != self._chain:  # stopped since it was scheduled
                return
            self._latest = max(now - self._due, 0.0)
            self._worst = max(self._worst or 0.0, self._latest)
        self._schedule()

    def stop(self) -> None:
        """No more probes (the loop stops running, or `LoopDelay` is removed). The timer
        is cancelled in the loop's thread, or here when the loop is not running (a uvloop
        timer is not to be touched from another thread while it runs); one that fires all
        the same is of an old chain, and ends there."""
        self.active = False
        with self._lock:
            self._due = None
            self._chain += 1
        timer, self._timer = self._timer, None
        loop = self._loop()
        if timer is None or loop is None or loop.is_closed():
            return
        if loop.is_running() and _running_loop() is not loop:
            loop.call_soon_threadsafe(timer.cancel)
        else:
            timer.cancel()

    def read(self) -> float | None:
        """The worst delay since the last reading (that of a pending probe already late
        included; the last probe's when none ran since, as when two readers collect one
        after the other), or None before the first probe; resets the worst."""
        now = monotonic()
        with self._lock:
            worst, self._worst = self._worst, None
            if worst is None:
                worst = self._latest
            if self._due is not None and now > self._due:
                worst = max(worst or 0.0, now - self._due)
        return worst


class LoopDelay:
    """The loops watched, their probes, and the wrapped `_set_running_loop`."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self._interval = interval
        self._probes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Probe] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._original: Callable[[Any], None] | None = None
        self._wrapper: Callable[[Any], None] | None = None

    def install(self) -> None:
        """Watch every loop that starts from now on, and the one running here, if one is."""
        original = asyncio.events._set_running_loop

        def _set_running_loop(loop: Any) -> None:
            stopping = _running_loop() if loop is None else None
            original(loop)
            if self._wrapper is not _set_running_loop:  # uninstalled, left in a chain
                return
            try:
                if loop is not None:
                    self.watch(loop)
                elif stopping is not None:
                    self._stopped(stopping)
            except Exception:  # never into the loop starting or stopping
                pass

        self._original, self._wrapper = original, _set_running_loop
        for module in _MODULES:
            module._set_running_loop = _set_running_loop
        self.watch_running()

    def uninstall(self) -> None:
        """Stop every probe; put `_set_running_loop` back where it is still ours."""
        if self._original is not None:
            for module in _MODULES:
                if getattr(module, "_set_running_loop", None) is self._wrapper:
                    module._set_running_loop = self._original
        self._original = self._wrapper = None
        with self._lock:
            probes = list(self._probes.values())
            self._probes.clear()
        for probe in probes:
            probe.stop()

    def watch_running(self) -> None:
        """Watch the loop running in this thread, if one is."""
        loop = _running_loop()
        if loop is not None:
            self.watch(loop)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Probe `loop` (again, if it stopped and runs again); once per loop."""
        with self._lock:
            probe = self._probes.get(loop)
            if probe is None:
                probe = self._probes[loop] = _Probe(loop, self._interval)
            elif probe.active:
                return
        probe.start()

    def _stopped(self, loop: asyncio.AbstractEventLoop) -> None:
        """A stopped loop is not late: its probe waits for it to run again."""
        with self._lock:
            probe = self._probes.get(loop)
        if probe is not None:
            probe.stop()

    def readings(self) -> Iterator[tuple[float, dict[str, Any]]]:
        """(worst delay in s, attributes) per running loop with a reading."""
        with self._lock:
            probes = list(self._probes.items())
        for loop, probe in probes:
            if loop.is_closed():
                with self._lock:
                    self._probes.pop(loop, None)
                continue
            worst = probe.read()
            if worst is not None and loop.is_running():
                yield worst, probe.attributes
