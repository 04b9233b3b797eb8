"""Running the same request through the compiled hook core and through its Python twin.

`Witness` attaches one recording instrument (and, when asked, a faulty one) and
collects everything observable from outside: the hook calls with their
attributes, the hook errors reported, and what the fake server was given. Two
witnesses of the same request, one per implementation, must be equal once the
values that cannot be equal (ids, clocks, the frames of a stack trace) are
normalised.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import hooktel
from hooktel._registry import errors as _errors

LEFT_SET: contextvars.ContextVar[int] = contextvars.ContextVar("twins_left_set")


class RecordingLog:
    """Stands in for the rate-limited hook error log: keeps every line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class Faults:
    """Which hooks raise, what the inject hook returns, which headers are captured."""

    raising: frozenset[str] = frozenset()
    inject: Any = None
    present: frozenset[str] = frozenset({"start", "inject", "end", "error"})  # hooks it has
    capture_request: tuple[str, ...] = ()
    capture_response: tuple[str, ...] = ()


@dataclass
class Witness:
    """What one run of a request showed."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    server: list[Any] = field(default_factory=list)
    outcome: Any = None

    def normalised(self) -> Witness:
        ids: dict[Any, int] = {}
        events = []
        for event, attrs in self.events:
            kept = dict(attrs)
            for clock in ("operation.timestamp", "operation.duration"):
                if clock in kept:
                    assert isinstance(kept.pop(clock), int)
            if "operation.id" in kept:
                kept["operation.id"] = ids.setdefault(kept["operation.id"], len(ids))
            if "exception.stacktrace" in kept:  # the frames differ; where it ends may not
                kept["exception.stacktrace"] = (
                    kept["exception.stacktrace"].rstrip().splitlines()[-1]
                )
            events.append((event, kept))
        return Witness(events, self.errors, self.server, self.outcome)


def _faulty(event: str, faults: Faults) -> bool:
    return event in faults.raising


@contextmanager
def witnessing(faults: Faults, monkeypatch: pytest.MonkeyPatch) -> Iterator[Witness]:
    """Attach a recording instrument with `faults`; yield what it witnesses."""
    witness = Witness()
    log = RecordingLog()
    monkeypatch.setattr(_errors, "hook_errors", log)

    def hook(event: str) -> Callable[[int, dict[str, Any]], None]:
        def record(op_id: int, attrs: dict[str, Any]) -> None:
            witness.events.append((event, {**attrs, "operation.id": op_id}))
            if event == "start":
                LEFT_SET.set(op_id)  # never reset: it must not leak out of the request
            if _faulty(event, faults):
                raise RuntimeError(f"{event} hook failed")

        return record

    def inject(op_id: int) -> Any:
        witness.events.append(("inject", {"operation.id": op_id}))
        if _faulty("inject", faults):
            raise RuntimeError("inject hook failed")
        return faults.inject

    def having(event: str, function: Any) -> Any:
        return function if event in faults.present else None

    ref = hooktel.attach(
        hooktel.Instrument(
            kind="http",
            name="witness",
            version="1.0",
            on_operation_start=having("start", hook("start")),
            on_operation_inject=having("inject", inject),
            on_operation_end=having("end", hook("end")),
            on_operation_error=having("error", hook("error")),
            capture_request_headers=faults.capture_request,
            capture_response_headers=faults.capture_response,
        )
    )
    try:
        yield witness
    finally:
        ref.detach()
        witness.errors = list(log.lines)


def outcome_of(exc: BaseException | None) -> Any:
    return None if exc is None else (type(exc).__name__, str(exc))
