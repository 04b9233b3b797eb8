"""The hook registry: instruments attach and detach, servers ask for `Hooks`.

Attach and detach rebuild an immutable `Hooks` snapshot per kind under a lock;
servers read the snapshot with one list index and no lock. A request keeps the
snapshot it started with, so an instrument detached mid-request still sees
the end (or error) of every operation it saw start.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._http.headers import (
    MAX_HEADER_VALUE,
    REQUEST_HEADER_PREFIX,
    RESPONSE_HEADER_PREFIX,
    HeaderCapture,
    is_token,
)
from .errors import report_hook_error
from .instrument import (
    Attributes,
    InstrumentInfo,
    InstrumentKind,
    ValidInstrument,
    coerce_kind,
    validate,
)

MAX_INJECTED_HEADERS = 20
FRAMING_HEADERS = frozenset(
    {
        # RFC 9112 section 6: how the body is delimited.
        "content-length",
        "transfer-encoding",
        # RFC 9110 section 7.6.1: connection-specific fields, and the fields the
        # HTTP/2 and HTTP/3 mappings forbid for that reason (RFC 9113 section 8.2.2).
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "http2-settings",
        # RFC 9110 section 7.2: where the message is routed.
        "host",
    }
)
"""Headers that frame or route the message: the server's to write, never an instrument's.

A second `Content-Length` or a `Transfer-Encoding` beside the server's own gives
the client two conflicting framings (or the server refuses to send); a
`Connection: close` or an `Upgrade` would change what happens to the connection.
"""
_BAD_VALUE = re.compile("[\u0100-\U0010ffff]")  # not latin-1

# One slot per kind; `None` when nothing of that kind is attached. Server hook
# points index this list directly: it is the one check they pay per request.
HOOKS_BY_KIND: list[Hooks | None] = [None] * len(InstrumentKind)
HTTP_KIND = int(InstrumentKind.HTTP)
"""`InstrumentKind.HTTP` as a plain int: the hook points' index into `HOOKS_BY_KIND`."""

_lock = threading.Lock()
_attached: dict[int, _Attached] = {}  # insertion order is registration order
_instrument_ids = itertools.count(1)
_operation_ids = itertools.count(1)


@dataclass(frozen=True)
class _Attached:
    id: int
    instrument: ValidInstrument


@dataclass(frozen=True)
class InstrumentRef:
    """Handle to an attached instrument; `with attach(...):` detaches on exit."""

    id: int

    def detach(self) -> bool:
        return detach(self.id)

    def __enter__(self) -> InstrumentRef:
        return self

    def __exit__(self, *exc_info: object) -> None:
        detach(self.id)


_Bound = tuple[Callable[..., Any], str, str]  # hook, instrument name, version


class Hooks:
    """The hooks of every instrument of one kind, in registration order.

    Immutable: attach and detach build a new one. Every `notify_*` runs each
    instrument's hook and reports (never raises) what a hook raises.
    """

    __slots__ = (
        "capture_request_headers",
        "capture_response_headers",
        "end_hooks",
        "error_hooks",
        "generate_id",
        "inject_hooks",
        "message_hooks",
        "notify_end",
        "notify_error",
        "notify_message",
        "notify_start",
        "request_capture",
        "response_capture",
        "start_hooks",
    )

    def __init__(self, instruments: list[ValidInstrument]) -> None:
        def bound(hook: str) -> tuple[_Bound, ...]:
            return tuple(
                (inst.hooks[hook], inst.name, inst.version)
                for inst in instruments
                if hook in inst.hooks
            )

        # (hook, name, version) per instrument: the native core calls these directly.
        self.start_hooks = bound("on_operation_start")
        self.end_hooks = bound("on_operation_end")
        self.error_hooks = bound("on_operation_error")
        self.notify_start = _notifier(self.start_hooks, "on_operation_start")
        self.notify_end = _notifier(self.end_hooks, "on_operation_end")
        self.notify_error = _notifier(self.error_hooks, "on_operation_error")
        # Between start and end, per WebSocket message: empty unless an instrument asks.
        self.message_hooks = bound("on_operation_message")
        self.notify_message = _notifier(self.message_hooks, "on_operation_message")
        self.inject_hooks = bound("on_operation_inject")
        self.capture_request_headers = _union(i.capture_request_headers for i in instruments)
        self.capture_response_headers = _union(i.capture_response_headers for i in instruments)
        # None when empty, so the per-request check is a plain truth test.
        self.request_capture = (
            HeaderCapture(REQUEST_HEADER_PREFIX, self.capture_request_headers)
            if self.capture_request_headers
            else None
        )
        self.response_capture = (
            HeaderCapture(RESPONSE_HEADER_PREFIX, self.capture_response_headers)
            if self.capture_response_headers
            else None
        )
        self.generate_id: Callable[[], int] = _operation_ids.__next__

    def notify_inject(self, op_id: int) -> dict[str, str]:
        """Merge the headers instruments want on the response; the first to set one wins."""
        headers: dict[str, str] = {}
        for hook, name, version in self.inject_hooks:
            try:
                returned = hook(op_id)
                if returned is not None:
                    merge_injected(headers, returned)
            except Exception as exc:
                report_hook_error("on_operation_inject", name, version, exc)
        return headers


Notify = Callable[[int, Attributes], None]


def _notifier(hooks: tuple[_Bound, ...], event: str) -> Notify:
    """Calls every hook in `hooks`, reporting (never raising) what a hook raises.

    One attached instrument is the usual case: its hook is called without the loop.
    """
    if len(hooks) == 1:
        [(hook, name, version)] = hooks

        def notify_one(op_id: int, attrs: Attributes) -> None:
            try:
                hook(op_id, attrs)
            except Exception as exc:
                report_hook_error(event, name, version, exc)

        return notify_one

    def notify(op_id: int, attrs: Attributes) -> None:
        for hook, name, version in hooks:
            try:
                hook(op_id, attrs)
            except Exception as exc:
                report_hook_error(event, name, version, exc)

    return notify


def merge_injected(headers: dict[str, str], returned: object) -> None:
    """Add what one instrument's inject hook returned to `headers`; raise for what is dropped."""
    if type(returned) is not dict and not isinstance(returned, Mapping):  # dict: skip the ABC
        raise TypeError(f"returned {type(returned).__name__}, expected a mapping of headers")
    rejected = []
    for key, value in returned.items():
        if not _valid_header(key, value) or (name := key.lower()) in FRAMING_HEADERS:
            rejected.append(key)
        elif len(headers) < MAX_INJECTED_HEADERS:
            headers.setdefault(name, value)
    if rejected:
        raise ValueError(_rejection(rejected))


def _rejection(rejected: list[object]) -> str:
    """Why `rejected` were dropped, for the hook error line."""
    framing = [k for k in rejected if isinstance(k, str) and k.lower() in FRAMING_HEADERS]
    invalid = [k for k in rejected if k not in framing]
    reasons = []
    if invalid:
        reasons.append(
            f"dropped invalid header(s) {invalid!r}: names and values must be str, no CR/LF"
        )
    if framing:
        reasons.append(
            f"dropped header(s) {framing!r}: headers that frame or route the message "
            "are the server's"
        )
    return "; ".join(reasons)


def _valid_header(name: object, value: object) -> bool:
    return (
        type(name) is str
        and type(value) is str
        and len(value) <= MAX_HEADER_VALUE
        and is_token(name)
        and "\r" not in value
        and "\n" not in value
        and "\x00" not in value
        and (value.isascii() or _BAD_VALUE.search(value) is None)
    )


def _union(lists: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(itertools.chain.from_iterable(lists)))


def _rebuild() -> None:
    """Recompute every kind's `Hooks` snapshot; caller holds `_lock`."""
    for kind in InstrumentKind:
        members = [a.instrument for a in _attached.values() if a.instrument.kind is kind]
        HOOKS_BY_KIND[kind] = Hooks(members) if members else None


def attach(instrument: object) -> InstrumentRef:
    """Attach an instrument; its hooks run for operations that start from now on."""
    valid = validate(instrument)
    with _lock:
        ref = _Attached(next(_instrument_ids), valid)
        _attached[ref.id] = ref
        _rebuild()
    return InstrumentRef(ref.id)


def detach(ref_or_id: InstrumentRef | int) -> bool:
    """Detach an instrument; `False` when it was not attached. Safe to call twice."""
    if isinstance(ref_or_id, InstrumentRef):
        ref_or_id = ref_or_id.id
    if not isinstance(ref_or_id, int) or isinstance(ref_or_id, bool):
        raise TypeError(
            f"detach() takes an InstrumentRef or an int id, not {type(ref_or_id).__name__}"
        )
    with _lock:
        if _attached.pop(ref_or_id, None) is None:
            return False
        _rebuild()
    return True


def native_hooks(kind: InstrumentKind | int | str = InstrumentKind.HTTP) -> Hooks | None:
    """The hooks servers call for operations of `kind`, or `None` when nobody listens."""
    try:
        return HOOKS_BY_KIND[coerce_kind(kind)]
    except (TypeError, ValueError):
        return None


def is_enabled_for(kind: InstrumentKind | int | str) -> bool:
    """True when an instrument of `kind` is attached; never raises."""
    return native_hooks(kind) is not None


def instruments() -> list[InstrumentInfo]:
    """The attached instruments, in registration order."""
    with _lock:
        return [
            InstrumentInfo(a.id, a.instrument.kind, a.instrument.name, a.instrument.version)
            for a in _attached.values()
        ]
