"""W3C Trace Context `traceparent` parsing (https://www.w3.org/TR/trace-context-2/).

Shared by every server hook point, so a request's parent is parsed exactly once.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_V00_LENGTH = 55


class TraceParent(NamedTuple):
    trace_id: str
    span_id: str
    trace_flags: int


def parse_traceparent(value: str) -> TraceParent | None:
    """The parent in a `traceparent` header value, or None when the value is invalid.

    Version `00` must be exactly 55 characters; a later version is read by its
    first four fields and may carry more after a `-`; version `ff` is invalid.
    """
    value = value.strip(" \t")
    match = _FIELDS.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if len(value) != _V00_LENGTH and (version == "00" or value[_V00_LENGTH] != "-"):
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))
