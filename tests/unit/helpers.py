"""Helpers shared by the unit tests: a recording instrument and a `begin_http` caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hooktel
from hooktel._http.operation import HttpOperation
from hooktel._http.request import begin_http

TRACE_ID = "12345678901234567890123456789012"
SPAN_ID = "1234567890123456"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"

Event = tuple[str, str, int, dict[str, Any]]


class Recorder:
    """An instrument that records every hook call as (event, name, op_id, copy of attrs)."""

    def __init__(
        self,
        name: str = "recorder",
        *,
        kind: Any = hooktel.InstrumentKind.HTTP,
        log: list[Event] | None = None,
        inject: Callable[[int], Any] | None = None,
        capture_request_headers: tuple[str, ...] = (),
        capture_response_headers: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.log: list[Event] = [] if log is None else log
        self._inject = inject
        self.instrument = hooktel.Instrument(
            kind=kind,
            name=name,
            version="1.0",
            on_operation_start=self._hook("start"),
            on_operation_inject=self._on_inject,
            on_operation_end=self._hook("end"),
            on_operation_error=self._hook("error"),
            capture_request_headers=capture_request_headers,
            capture_response_headers=capture_response_headers,
        )

    def _hook(self, event: str) -> Callable[[int, dict[str, Any]], None]:
        def hook(op_id: int, attrs: dict[str, Any]) -> None:
            self.log.append((event, self.name, op_id, dict(attrs)))

        return hook

    def _on_inject(self, op_id: int) -> Any:
        self.log.append(("inject", self.name, op_id, {}))
        return self._inject(op_id) if self._inject is not None else None

    def attach(self) -> hooktel.InstrumentRef:
        return hooktel.attach(self.instrument)

    def events(self, event: str | None = None) -> list[Event]:
        return [entry for entry in self.log if event is None or entry[0] == event]

    def attrs(self, event: str) -> dict[str, Any]:
        """The attributes of the one `event` recorded (fails unless exactly one)."""
        found = self.events(event)
        assert len(found) == 1, found
        return found[0][3]


def start(
    hooks: hooktel.Hooks | None = None,
    *,
    method: str = "GET",
    scheme: str = "http",
    path: str = "/",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    server: tuple[str, int] | None = ("127.0.0.1", 8080),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    protocol: str = "1.1",
) -> HttpOperation:
    """Call `begin_http` as a server hook point would, with sensible defaults."""
    if hooks is None:
        hooks = hooktel.native_hooks()
    assert hooks is not None, "attach an HTTP instrument first"
    return begin_http(
        hooks,
        method=method,
        scheme=scheme,
        path=path,
        query=query,
        headers=headers if headers is not None else [("host", "example.com:8080")],
        server=server,
        client=client,
        protocol=protocol,
    )
