"""What an instrument is, and the checks that run once when it is attached.

Everything is validated here, at attach time, so that the per-request path can
trust what it holds and never re-check it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._http.headers import is_token

Attributes = dict[str, Any]
"""Attribute mapping handed to hooks: str, int, float, bool or tuple[str, ...] values."""

StartHook = Callable[[int, Attributes], None]
InjectHook = Callable[[int], "Mapping[str, str] | None"]

HOOK_NAMES = (
    "on_operation_start",
    "on_operation_inject",
    "on_operation_end",
    "on_operation_error",
    "on_operation_message",
)
MAX_NAME_LENGTH = 256
MAX_CAPTURED_HEADERS = 50


class InstrumentKind(enum.IntEnum):
    """The kind of operation an instrument observes; servers ask for hooks by kind."""

    CUSTOM = 0
    HTTP = 1
    FETCH = 2
    SQL = 3
    REDIS = 4


@dataclass
class Instrument:
    """An instrument to attach: who it is, which hooks it has, which headers it wants."""

    kind: InstrumentKind | int | str
    name: str
    version: str
    on_operation_start: StartHook | None = None
    on_operation_inject: InjectHook | None = None
    on_operation_end: StartHook | None = None
    on_operation_error: StartHook | None = None
    on_operation_message: StartHook | None = None
    capture_request_headers: Sequence[str] = ()
    capture_response_headers: Sequence[str] = ()


class InstrumentInfo(NamedTuple):
    """One attached instrument, as `hooktel.instruments()` lists it."""

    id: int
    kind: InstrumentKind
    name: str
    version: str


@dataclass(frozen=True)
class ValidInstrument:
    """An instrument after validation: hooks checked, header names lowercased."""

    kind: InstrumentKind
    name: str
    version: str
    hooks: Mapping[str, Callable[..., Any]]
    capture_request_headers: tuple[str, ...]
    capture_response_headers: tuple[str, ...]


def coerce_kind(kind: object) -> InstrumentKind:
    """Accept an `InstrumentKind`, its integer value or its lowercase name."""
    if isinstance(kind, str):
        try:
            return InstrumentKind[kind.upper()] if kind == kind.lower() else _bad_kind(kind)
        except KeyError:
            return _bad_kind(kind)
    if isinstance(kind, int) and not isinstance(kind, bool):
        try:
            return InstrumentKind(kind)
        except ValueError:
            return _bad_kind(kind)
    raise TypeError(f"kind must be an InstrumentKind, int or str, not {type(kind).__name__}")


def _bad_kind(kind: object) -> InstrumentKind:
    known = ", ".join(k.name.lower() for k in InstrumentKind)
    raise ValueError(f"kind: unknown instrument kind {kind!r} (known: {known})")


def validate(instrument: object) -> ValidInstrument:
    """Check an `Instrument` (or any object with its attributes); raise naming the field."""
    for field in ("kind", "name", "version"):
        if not hasattr(instrument, field):
            raise TypeError(f"instrument has no {field!r} attribute")
    kind = coerce_kind(instrument.kind)  # type: ignore[attr-defined]
    name = _text(instrument, "name", MAX_NAME_LENGTH)
    version = _text(instrument, "version", MAX_NAME_LENGTH)
    hooks: dict[str, Callable[..., Any]] = {}
    for hook_name in HOOK_NAMES:
        hook = getattr(instrument, hook_name, None)
        if hook is None:
            continue
        if not callable(hook):
            raise TypeError(f"{hook_name} must be callable, not {type(hook).__name__}")
        hooks[hook_name] = hook
    if not hooks:
        raise ValueError(f"instrument {name!r} has no hook: give at least one of {HOOK_NAMES}")
    return ValidInstrument(
        kind=kind,
        name=name,
        version=version,
        hooks=hooks,
        capture_request_headers=_header_names(instrument, "capture_request_headers"),
        capture_response_headers=_header_names(instrument, "capture_response_headers"),
    )


def _text(instrument: object, field: str, limit: int) -> str:
    value = getattr(instrument, field)
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, not {type(value).__name__}")
    if not value or len(value) > limit:
        raise ValueError(f"{field} must be 1 to {limit} characters long, got {len(value)}")
    return value


def _header_names(instrument: object, field: str) -> tuple[str, ...]:
    names = getattr(instrument, field, None) or ()
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence | set | frozenset):
        raise TypeError(f"{field} must be a sequence of header names, not {type(names).__name__}")
    if len(names) > MAX_CAPTURED_HEADERS:
        raise ValueError(f"{field} lists {len(names)} headers; at most {MAX_CAPTURED_HEADERS}")
    lowered: list[str] = []
    for header in names:
        if not isinstance(header, str) or not is_token(header):
            raise ValueError(f"{field}: {header!r} is not a valid header name")
        if header.lower() not in lowered:
            lowered.append(header.lower())
    return tuple(lowered)
