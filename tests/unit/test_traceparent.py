"""W3C Trace Context `traceparent` parsing, and the `trace.parent.*` start attributes.

Cases follow https://www.w3.org/TR/trace-context-2/ (sections 3.2 and 4.3) and the
W3C test suite (w3c/trace-context, test/test.py).
"""

from __future__ import annotations

import pytest

from hooktel._http.traceparent import TraceParent, parse_traceparent

from .helpers import SPAN_ID, TRACE_ID, TRACEPARENT, Recorder, start

T = TRACE_ID  # 12345678901234567890123456789012
S = SPAN_ID  # 1234567890123456

VALID = [
    # (header value, trace_id, span_id, flags)
    (f"00-{T}-{S}-01", T, S, 1),
    (f"00-{T}-{S}-00", T, S, 0),
    (f"00-{T}-{S}-ff", T, S, 255),  # unknown flags are kept, not rejected
    (f"00-{T}-{S}-03", T, S, 3),  # level 2: the random-trace-id flag
    (
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the spec's example
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        1,
    ),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None, None, 1),
    (f"00-{'0' * 31}1-{'0' * 15}1-01", "0" * 31 + "1", "0" * 15 + "1", 1),  # not all zero
    # Future versions: read the first four fields; more may follow after a '-'.
    (f"cc-{T}-{S}-01", T, S, 1),
    (f"cc-{T}-{S}-01-what-the-future-will-be-like", T, S, 1),
    (f"01-{T}-{S}-01-", T, S, 1),
    (f"fe-{T}-{S}-00-extra", T, S, 0),
    # Optional whitespace around the value (RFC 9110 OWS: space and tab).
    (f" 00-{T}-{S}-01", T, S, 1),
    (f"\t00-{T}-{S}-01", T, S, 1),
    (f"00-{T}-{S}-01 ", T, S, 1),
    (f"00-{T}-{S}-01\t", T, S, 1),
    (f"\t 00-{T}-{S}-01 \t", T, S, 1),
]

INVALID = [
    # version
    f"ff-{T}-{S}-01",  # version 255 is forbidden
    f"ff-{T}-{S}-01-more",
    f".0-{T}-{S}-01",
    f"0.-{T}-{S}-01",
    f"000-{T}-{S}-01",
    f"0000-{T}-{S}-01",
    f"0-{T}-{S}-01",
    f"0A-{T}-{S}-01",  # uppercase hex
    f"FF-{T}-{S}-01",
    # version 00 with anything after the flags
    f"00-{T}-{S}-01.",
    f"00-{T}-{S}-01-what-the-future-will-be-like",
    f"00-{T}-{S}-01-",
    f"00-{T}-{S}-01,00-{T}-{S}-01",  # two values folded into one line
    # future version: what follows the flags must start with '-'
    f"cc-{T}-{S}-01.what-the-future-will-be-like",
    f"cc-{T}-{S}-01what",
    f"cc-{T}-{S}-011",
    # trace-id
    f"00-{'0' * 32}-{S}-01",  # all zero
    f"cc-{'0' * 32}-{S}-01",
    f"00-.2345678901234567890123456789012-{S}-01",
    f"00-1234567890123456789012345678901.-{S}-01",
    f"00-123456789012345678901234567890123-{S}-01",  # 33 digits
    f"00-1234567890123456789012345678901-{S}-01",  # 31 digits
    f"00-{T.upper()[:-1]}A-{S}-01",
    f"00-4BF92F3577B34DA6A3CE929D0E0E4736-{S}-01",
    f"00-{T[:-1]}g-{S}-01",
    # parent-id (span id)
    f"00-{T}-{'0' * 16}-01",  # all zero
    f"00-{T}-.234567890123456-01",
    f"00-{T}-123456789012345.-01",
    f"00-{T}-12345678901234567-01",  # 17 digits
    f"00-{T}-123456789012345-01",  # 15 digits
    f"00-{T}-00F067AA0BA902B7-01",
    # trace-flags
    f"00-{T}-{S}-.0",
    f"00-{T}-{S}-0.",
    f"00-{T}-{S}-001",
    f"00-{T}-{S}-1",
    f"00-{T}-{S}-",
    f"00-{T}-{S}-0F",
    f"00-{T}-{S}-xx",
    # separators and shape
    f"00_{T}_{S}_01",
    f"00-{T}_{S}-01",
    f"00{T}{S}01",
    f"00 {T} {S} 01",
    f"00--{T}-{S}-01",
    f"00-{T}-{S}--01",
    f"00-{T}-{S}",
    f"00-{T}",
    "00",
    "",
    " ",
    "\t",
    "not a traceparent",
    f"-00-{T}-{S}-01",
    f"00-{T}-{S}-01\n",  # not optional whitespace
    f"\n00-{T}-{S}-01",
    f"00-{T}-{S}-01\x00",
    f"\u00a000-{T}-{S}-01",  # non-breaking space is not OWS
    f"x00-{T}-{S}-01",
    # non-ASCII digits that str.isdigit() would accept
    f"00-{T[:-1]}\u0661-{S}-01",
]


@pytest.mark.parametrize(("value", "trace_id", "span_id", "flags"), VALID)
def test_valid_traceparent(
    value: str, trace_id: str | None, span_id: str | None, flags: int
) -> None:
    parsed = parse_traceparent(value)
    assert isinstance(parsed, TraceParent)
    expected_trace, expected_span = value.strip(" \t")[3:35], value.strip(" \t")[36:52]
    assert parsed == (trace_id or expected_trace, span_id or expected_span, flags)
    assert isinstance(parsed.trace_flags, int)


@pytest.mark.parametrize("value", INVALID)
def test_invalid_traceparent(value: str) -> None:
    assert parse_traceparent(value) is None


def test_every_future_version_but_ff_is_read() -> None:
    for version in range(1, 255):
        value = f"{version:02x}-{T}-{S}-01-extension"
        assert parse_traceparent(value) == (T, S, 1), value
    assert parse_traceparent(f"ff-{T}-{S}-01-extension") is None


# --- through begin_http --------------------------------------------------------------


def start_attrs(headers: list[tuple[str, str]]) -> dict[str, object]:
    rec = Recorder()
    rec.attach()
    start(headers=[("host", "example.com"), *headers]).end()
    return rec.attrs("start")


def parent_attrs(attrs: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in attrs.items() if k.startswith("trace.parent.")}


def test_one_valid_traceparent_gives_the_parent() -> None:
    attrs = start_attrs([("traceparent", TRACEPARENT)])
    assert parent_attrs(attrs) == {
        "trace.parent.trace_id": T,
        "trace.parent.span_id": S,
        "trace.parent.trace_flags": 1,
    }


def test_trace_flags_is_an_int() -> None:
    attrs = start_attrs([("traceparent", f"00-{T}-{S}-00")])
    assert attrs["trace.parent.trace_flags"] == 0
    assert type(attrs["trace.parent.trace_flags"]) is int


@pytest.mark.parametrize("value", INVALID)
def test_invalid_traceparent_gives_no_parent(value: str) -> None:
    attrs = start_attrs([("traceparent", value), ("tracestate", "foo=1")])
    assert parent_attrs(attrs) == {}


def test_no_traceparent_gives_no_parent() -> None:
    assert parent_attrs(start_attrs([("tracestate", "foo=1")])) == {}
    assert parent_attrs(start_attrs([])) == {}


def test_two_traceparent_headers_give_no_parent() -> None:
    other = f"00-{T[:-1]}1-{S}-01"
    attrs = start_attrs([("traceparent", other), ("traceparent", TRACEPARENT)])
    assert parent_attrs(attrs) == {}
    # ... even when both lines carry the same value, or one of them is invalid.
    assert parent_attrs(start_attrs([("traceparent", TRACEPARENT)] * 2)) == {}
    invalid_too = [("traceparent", "garbage"), ("traceparent", TRACEPARENT)]
    assert parent_attrs(start_attrs(invalid_too)) == {}


def test_tracestate_with_the_parent() -> None:
    attrs = start_attrs([("traceparent", TRACEPARENT), ("tracestate", "foo=1,bar=2")])
    assert attrs["trace.parent.trace_state"] == "foo=1,bar=2"


def test_several_tracestate_lines_are_joined_in_order() -> None:
    attrs = start_attrs(
        [
            ("tracestate", "foo=1,bar=2"),
            ("traceparent", TRACEPARENT),
            ("accept", "*/*"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ]
    )
    assert attrs["trace.parent.trace_state"] == "foo=1,bar=2,rojo=1,congo=2,baz=3"


def test_no_tracestate_attribute_without_a_tracestate_header() -> None:
    attrs = start_attrs([("traceparent", TRACEPARENT)])
    assert "trace.parent.trace_state" not in attrs


def test_trace_parent_attributes_are_strs_and_int() -> None:
    attrs = start_attrs([("traceparent", f"cc-{T}-{S}-09-more"), ("tracestate", "a=b")])
    assert parent_attrs(attrs) == {
        "trace.parent.trace_id": T,
        "trace.parent.span_id": S,
        "trace.parent.trace_flags": 9,
        "trace.parent.trace_state": "a=b",
    }
