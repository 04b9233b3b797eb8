"""Instruments that record every hook event as a JSON line, for servers in subprocesses.

A server process imports this (through `tests.support.apps`); when
`HOOKTEL_TEST_EVENTS` names a file, three HTTP instruments attach at import
time, in this order:

- `primary` v1.0 records every event and injects `x-hooktel-op` and
  `x-injected-by: primary`;
- `faulty` v9.9 has only a start hook, which raises when the request carries
  `x-test-raise-hook` (so a test can check the error line on stderr), and sets the
  context var `LEFT_SET` without ever resetting it;
- `auxiliary` v2.0 records every event and injects `x-injected-by: auxiliary`
  (which must lose: the first instrument to set a header wins) and
  `x-hooktel-aux`.

The names sort opposite to registration order, so an order test cannot pass
by accident of sorting. Each JSON line is written and flushed under a lock,
so the file order is the order the hooks ran in.

The apps also write one `served` line per request once the server is done
with it (`served()`), after every hook of its operation has run: a test waits
for that line, so "nothing after the end" is checked, not raced.
"""

from __future__ import annotations

import json
import os
import threading
from contextvars import ContextVar
from typing import Any, TextIO

import hooktel

EVENTS_ENV = "HOOKTEL_TEST_EVENTS"
INJECT_ENV = "HOOKTEL_TEST_INJECT"
"""A JSON object of extra headers `primary` returns from its inject hook (after its own)."""
TAG_HEADER = "x-test-id"
RAISE_HEADER = "x-test-raise-hook"
CAPTURE_REQUEST = (
    TAG_HEADER,
    RAISE_HEADER,
    "x-capture-me",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-csrf-token",
    "proxy_authorization",  # the same CGI key as proxy-authorization: WSGI reads one for both
    "x-api_key",
)
CAPTURE_RESPONSE = ("x-app-header", "set-cookie", "content-type", "link")
HOOK_ERROR_MESSAGE = "hook exploded"
SERVED = "served"
_out: JsonLines | None = None
LEFT_SET: ContextVar[int] = ContextVar("hooktel_test_left_set")
"""Set by `faulty`'s start hook and never reset."""


class JsonLines:
    """Appends one JSON object per line to a file; safe across threads."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            if self._file is None:  # opened lazily: gunicorn imports the app before forking
                self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(line)
            self._file.flush()


def recording_instrument(
    out: JsonLines, name: str, version: str, inject: dict[str, str]
) -> hooktel.Instrument:
    """An instrument that writes each of its four hook calls to `out`."""

    def recorder(event: str) -> Any:
        def hook(op_id: int, attrs: hooktel.Attributes) -> None:
            out.write(
                {
                    "instrument": name,
                    "event": event,
                    "op_id": op_id,
                    "pid": os.getpid(),
                    "attrs": dict(attrs),
                }
            )

        return hook

    def on_inject(op_id: int) -> dict[str, str]:
        out.write(
            {"instrument": name, "event": "inject", "op_id": op_id, "pid": os.getpid(), "attrs": {}}
        )
        return {key: value.format(op_id=op_id) for key, value in inject.items()}

    return hooktel.Instrument(
        kind="http",
        name=name,
        version=version,
        on_operation_start=recorder("start"),
        on_operation_inject=on_inject,
        on_operation_end=recorder("end"),
        on_operation_error=recorder("error"),
        capture_request_headers=CAPTURE_REQUEST,
        capture_response_headers=CAPTURE_RESPONSE,
    )


def _faulty_start(op_id: int, attrs: hooktel.Attributes) -> None:
    LEFT_SET.set(op_id)  # and never reset: what a careless instrument does
    if f"http.request.header.{RAISE_HEADER}" in attrs:
        raise RuntimeError(HOOK_ERROR_MESSAGE)


def served(tag: str | None, inherited: int | None = None) -> None:
    """Record that the server is done with the request tagged `tag`.

    `inherited`: the `LEFT_SET` value the server's context had when the request came in.
    """
    if _out is not None:
        _out.write(
            {
                "instrument": "app",
                "event": SERVED,
                "op_id": 0,
                "pid": os.getpid(),
                "attrs": {"tag": tag, "inherited": inherited},
            }
        )


def attach_from_env() -> None:
    """Attach the three test instruments when `HOOKTEL_TEST_EVENTS` is set."""
    global _out  # noqa: PLW0603 - one events file per server process
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    out = _out = JsonLines(path)
    extra = json.loads(os.environ.get(INJECT_ENV) or "{}")
    hooktel.attach(
        recording_instrument(
            out,
            "primary",
            "1.0",
            {"x-hooktel-op": "{op_id}", "x-injected-by": "primary", **extra},
        )
    )
    hooktel.attach(
        hooktel.Instrument(
            kind="http",
            name="faulty",
            version="9.9",
            on_operation_start=_faulty_start,
            capture_request_headers=CAPTURE_REQUEST,
        )
    )
    hooktel.attach(
        recording_instrument(
            out, "auxiliary", "2.0", {"x-injected-by": "auxiliary", "x-hooktel-aux": "aux-{op_id}"}
        )
    )
