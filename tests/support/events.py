"""Reading the recorded hook events back, and the per-operation contract checker."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.support.recorder import SERVED, TAG_HEADER

RECORDERS = ("primary", "auxiliary")  # in registration order
T = TypeVar("T")

# Per operation and instrument: start first, at most one inject, then exactly
# one of end or error, and nothing after. `_IN_FLIGHT` allows a missing ending.
_COMPLETE = re.compile(r"start( inject)? (end|error)")
_IN_FLIGHT = re.compile(r"start( inject)?( (end|error))?")


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = 5.0) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Event:
    instrument: str
    event: str
    op_id: int
    pid: int
    attrs: dict[str, Any]


def check_lifecycle(events: list[Event], complete: bool = True) -> None:
    """Assert the per-operation contract on every operation in `events`.

    With `complete`, every operation that started must also have ended or failed.
    """
    streams: dict[tuple[int, str, int], list[Event]] = {}
    for event in events:
        if event.instrument not in RECORDERS:
            continue
        streams.setdefault((event.pid, event.instrument, event.op_id), []).append(event)
    pattern = _COMPLETE if complete else _IN_FLIGHT
    for key, stream in streams.items():
        sequence = " ".join(e.event for e in stream)
        assert pattern.fullmatch(sequence), f"operation {key}: hooks ran as [{sequence}]"
        for event in stream:
            if event.event != "inject":
                assert event.attrs["operation.id"] == event.op_id, event
            if event.event in ("end", "error"):
                assert isinstance(event.attrs["operation.duration"], int), event
                assert event.attrs["operation.duration"] >= 0, event
    assert all(op_id > 0 for _pid, _instrument, op_id in streams), "ids must be positive"


class EventLog:
    """The JSON-lines file the recording instruments of one server write to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Event]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # a line being written is not read yet
        return [Event(**json.loads(line)) for line in complete.splitlines()]

    def started(self, tag: str) -> bool:
        """Whether the request sent with `x-test-id: tag` has started (its start hook ran)."""
        key = f"http.request.header.{TAG_HEADER}"
        return any(e.event == "start" and e.attrs.get(key) == [tag] for e in self.read())

    def operation(self, tag: str, timeout: float = 5.0) -> Operation:
        """The operation of the request sent with `x-test-id: tag`, once the server is done.

        Waits for the app's `served` line for `tag` (written after the last
        hook of the request could run), then checks the lifecycle of every
        operation recorded so far.
        """

        def served() -> list[Event] | None:
            events = self.read()
            done = any(e.event == SERVED and e.attrs["tag"] == tag for e in events)
            return events if done else None

        events = wait_for(served, f"the server to be done with the request tagged {tag!r}", timeout)
        check_lifecycle(events, complete=False)
        starts = [
            e
            for e in events
            if e.event == "start" and e.attrs.get(f"http.request.header.{TAG_HEADER}") == [tag]
        ]
        assert len(starts) == len(RECORDERS), f"expected a start per recorder, got {starts}"
        first = starts[0]
        op_events = [
            e
            for e in events
            if e.instrument in RECORDERS and (e.pid, e.op_id) == (first.pid, first.op_id)
        ]
        for instrument in RECORDERS:  # this operation is over: it has its end or error
            sequence = [e.event for e in op_events if e.instrument == instrument]
            assert sequence[-1] in ("end", "error"), f"{instrument} saw {sequence}"
        return Operation(first.op_id, op_events)


@dataclass(frozen=True)
class Operation:
    """One operation's events, from all recording instruments, in the order hooks ran."""

    id: int
    events: list[Event]

    def of(self, instrument: str = "primary") -> list[Event]:
        return [e for e in self.events if e.instrument == instrument]

    def sequence(self, instrument: str = "primary") -> list[str]:
        return [e.event for e in self.of(instrument)]

    def only(self, event: str, instrument: str = "primary") -> dict[str, Any]:
        """The attributes of the one `event` the instrument saw (failing if not exactly one)."""
        found = [e for e in self.of(instrument) if e.event == event]
        assert len(found) == 1, f"expected one {event}, got {self.sequence(instrument)}"
        return found[0].attrs

    @property
    def start(self) -> dict[str, Any]:
        return self.only("start")

    @property
    def end(self) -> dict[str, Any]:
        return self.only("end")

    @property
    def error(self) -> dict[str, Any]:
        return self.only("error")
