"""W3C Trace Context `tracestate` rules (https://www.w3.org/TR/trace-context-2/).

One module for both sides: the OpenTelemetry propagator and the server hook
layer read and write `tracestate` with these functions, so a member accepted
by one is accepted by the other. Standard library only, because `hooktel`
itself must not import OpenTelemetry.

Grammar (the editor's draft of Level 2, section 3.3.1.3 "list-members"):

    key      = ( lcalpha / DIGIT ) 0*255 ( keychar )
    keychar  = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
    value    = 0*255(chr) nblk-chr
    nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
    chr      = %x20 / nblk-chr
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

Member = tuple[str, str]

MAX_MEMBERS = 32
"""Section 3.3.1.2: "There can be a maximum of 32 list-members in a list"."""

MAX_PROPAGATED_LENGTH = 8192
"""The longest `tracestate` this side sends (section 3.3.1.5 "tracestate Limits").

The spec asks for at least 512 characters and sets no upper bound, but
OpenTelemetry's own propagators discard a received `tracestate` longer than
8192 characters as a whole; truncating whole entries here keeps the rest
readable downstream.
"""

LARGE_ENTRY = 128
"""Section 3.3.1.5: entries longer than this are the first to go when truncating."""

_OWS = " \t"
# ASCII-only classes on purpose: `\d` would also match non-ASCII digits.
_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def is_valid_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def is_valid_value(value: str) -> bool:
    return _VALUE.fullmatch(value) is not None


def combine(lines: Iterable[str]) -> str:
    """Several `tracestate` header lines as one value (section 3.3.1.1, RFC 9110 5.3)."""
    return ",".join(lines)


def parse(value: str) -> list[Member] | None:
    """The members of a combined `tracestate` value, or None to discard the header.

    Empty and whitespace-only members are skipped (section 3.3.1.2 allows them,
    since joining lines can produce them) and do not count towards the 32.
    Spaces and tabs around a member are optional whitespace; inside it, the
    key runs to the first `=` and the value keeps its leading spaces.

    The whole header is discarded (Processing Model, "A traceparent is
    Received", step 3: "If the tracestate header cannot be parsed the vendor
    MAY discard the entire header") when a member does not follow the grammar, when a key
    repeats (section 3.3.1.4: "Only one entry per key is allowed"), or when
    there are more than 32 members. Keeping the rest would forward a header
    the sender never wrote; the W3C test suite (test/test.py, strict level 2)
    expects exactly this. A header without any such fault is kept whole.
    """
    members: list[Member] = []
    seen: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        key, sep, val = member.partition("=")
        if not sep or key in seen or not is_valid_key(key) or not is_valid_value(val):
            return None
        seen.add(key)
        members.append((key, val))
        if len(members) > MAX_MEMBERS:
            return None
    return members


def format_members(members: Iterable[Member]) -> str:
    """The header value for `members`, without optional whitespace (section 3.3.1.2)."""
    return ",".join(f"{key}={value}" for key, value in members)


def truncate(members: Sequence[Member], max_length: int = MAX_PROPAGATED_LENGTH) -> list[Member]:
    """`members` cut to fit `max_length` characters as a header, by whole entries.

    Section 3.3.1.5: "the vendor MUST truncate whole entries. Entries larger
    than 128 characters long SHOULD be removed first. Then entries SHOULD be
    removed starting from the end of tracestate." Large entries go right to
    left, and only as many as needed, so a fitting header is returned as is.
    """
    kept = list(members)
    length = _header_length(kept)
    for index in range(len(kept) - 1, -1, -1):
        if length <= max_length:
            return kept
        if _entry_length(kept[index]) > LARGE_ENTRY:
            length -= _entry_length(kept.pop(index)) + (1 if kept else 0)
    while length > max_length and kept:
        length -= _entry_length(kept.pop()) + (1 if kept else 0)
    return kept


def _entry_length(member: Member) -> int:
    return len(member[0]) + 1 + len(member[1])


def _header_length(members: Sequence[Member]) -> int:
    return sum(_entry_length(m) for m in members) + max(len(members) - 1, 0)
