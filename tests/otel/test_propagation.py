"""hooktel.propagation: the W3C Trace Context test suite's headers, extracted and injected.

The table follows w3c/trace-context `test/test.py` (strict level 2), with the
Level 2 key grammar (w3c/trace-context#584: `@` is an ordinary key character).
Each case goes through a real `ThreadingHTTPServer` whose handler extracts with
the propagator from `self.headers`, starts a child span and injects it, and also
rebuilds the parent from the hook layer's `trace.parent.*` attributes; and
through the propagator directly, with two kinds of carrier.
"""

from __future__ import annotations

import email.message
import http.client
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.propagators import textmap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

import hooktel
import hooktel.httpserver
from hooktel._http import tracestate as _tracestate
from hooktel.otel._sdk import trace as seam
from hooktel.propagation import (
    TraceContextPropagator,
    W3CTraceState,
    parse_tracestate,
    span_context_from_parent,
)

TRACE_ID = "12345678901234567890123456789012"
SPAN_ID = "1234567890123456"
TP01 = f"00-{TRACE_ID}-{SPAN_ID}-01"
TP00 = f"00-{TRACE_ID}-{SPAN_ID}-00"
OUTGOING = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
PROPAGATOR = TraceContextPropagator()
KEPT_FLAGS = 0x01 | seam.RANDOM_TRACE_ID  # sampled, and random-trace-id where the API has it

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Case:
    name: str
    headers: Headers
    flags: int | None  # the parent's trace flags; None: no parent, a new trace
    tracestate: str = ""  # the tracestate the parent carries and the child forwards


def _restart(name: str, *headers: tuple[str, str]) -> Case:
    return Case(name, headers, None)


def _state(name: str, expected: str, *lines: str, name_as: str = "tracestate") -> Case:
    return Case(name, (("traceparent", TP00), *((name_as, line) for line in lines)), 0, expected)


_KEY = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
_KEY_AT = _KEY + "@a-z0-9_-*/"
_VALUE = "".join(map(chr, [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)]))
_BARS = [",".join(f"bar{i:02d}={i:02d}" for i in range(a, a + 10)) for a in (1, 11, 21)]
_T241_V14 = "t" * 241 + "@" + "v" * 14
_32 = ",".join(f"bar{i:02d}={i:02d}" for i in range(1, 33))

TRACEPARENT_CASES = [
    Case("valid", (("traceparent", TP01),), 1),
    Case("name TraceParent", (("TraceParent", TP01),), 1),
    Case("name TrAcEpArEnT", (("TrAcEpArEnT", TP01),), 1),
    Case("name TRACEPARENT", (("TRACEPARENT", TP01),), 1),
    Case("version cc", (("traceparent", f"cc-{TRACE_ID}-{SPAN_ID}-01"),), 1),
    Case("version cc, more fields", (("traceparent", f"cc-{TRACE_ID}-{SPAN_ID}-01-what"),), 1),
    Case("OWS leading space", (("traceparent", " " + TP01),), 1),
    Case("OWS leading tab", (("traceparent", "\t" + TP01),), 1),
    Case("OWS trailing space", (("traceparent", TP01 + " "),), 1),
    Case("OWS trailing tab", (("traceparent", TP01 + "\t"),), 1),
    Case("OWS both", (("traceparent", "\t " + TP01 + " \t"),), 1),
    Case("flags 00", (("traceparent", TP00),), 0),
    _restart("two traceparents", ("traceparent", TP01), ("traceparent", TP01[:-1] + "0")),
    _restart(
        "two traceparents, two trace ids",
        ("traceparent", f"00-{TRACE_ID[:-1]}1-{SPAN_ID}-01"),
        ("traceparent", TP01),
    ),
    _restart("name trace-parent", ("trace-parent", TP01)),
    _restart("name trace.parent", ("trace.parent", TP01)),
    _restart("version 00, trailing dot", ("traceparent", TP01 + ".")),
    _restart("version 00, more fields", ("traceparent", TP01 + "-what-the-future-will-be-like")),
    _restart("version cc, dot", ("traceparent", f"cc-{TRACE_ID}-{SPAN_ID}-01.what")),
    _restart("version ff", ("traceparent", f"ff-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("version .0", ("traceparent", f".0-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("version 0.", ("traceparent", f"0.-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("version 000", ("traceparent", f"000-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("version 0000", ("traceparent", f"0000-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("version 0", ("traceparent", f"0-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("version 0A", ("traceparent", f"0A-{TRACE_ID}-{SPAN_ID}-01")),
    _restart("trace-id zero", ("traceparent", f"00-{'0' * 32}-{SPAN_ID}-01")),
    _restart("trace-id .", ("traceparent", f"00-.{TRACE_ID[1:]}-{SPAN_ID}-01")),
    _restart("trace-id trailing .", ("traceparent", f"00-{TRACE_ID[:-1]}.-{SPAN_ID}-01")),
    _restart("trace-id 33", ("traceparent", f"00-{TRACE_ID}3-{SPAN_ID}-01")),
    _restart("trace-id 31", ("traceparent", f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01")),
    _restart("trace-id uppercase", ("traceparent", f"00-{'A' * 32}-{SPAN_ID}-01")),
    _restart("parent-id zero", ("traceparent", f"00-{TRACE_ID}-{'0' * 16}-01")),
    _restart("parent-id .", ("traceparent", f"00-{TRACE_ID}-.{SPAN_ID[1:]}-01")),
    _restart("parent-id trailing .", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID[:-1]}.-01")),
    _restart("parent-id 17", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID}7-01")),
    _restart("parent-id 15", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID[:-1]}-01")),
    _restart("flags .0", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-.0")),
    _restart("flags 0.", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-0.")),
    _restart("flags 001", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-001")),
    _restart("flags 1", ("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-1")),
    _restart("tracestate without traceparent", ("tracestate", "foo=1")),
    _restart("tracestate without traceparent, two", ("tracestate", "foo=1,bar=2")),
    _restart("missing"),
]

TRACESTATE_CASES = [
    _state("inherited", "foo=1,bar=2", "foo=1,bar=2"),
    _state("name trace-state", "", "foo=1", name_as="trace-state"),
    _state("name trace.state", "", "foo=1", name_as="trace.state"),
    _state("name TraceState", "foo=1", "foo=1", name_as="TraceState"),
    _state("name TrAcEsTaTe", "foo=1", "foo=1", name_as="TrAcEsTaTe"),
    _state("name TRACESTATE", "foo=1", "foo=1", name_as="TRACESTATE"),
    _state("empty", "", ""),
    _state("empty line after", "foo=1", "foo=1", ""),
    _state("empty line before", "foo=1", "", "foo=1"),
    _state("empty members", "foo=1,bar=2", ",foo=1, ,,\t,bar=2,"),
    _state(
        "lines combined in order",
        "foo=1,bar=2,rojo=1,congo=2,baz=3",
        "foo=1,bar=2",
        "rojo=1,congo=2",
        "baz=3",
    ),
    # W3C test suite, test_tracestate_duplicated_keys: inherited, all but the first dropped.
    _state("duplicate key", "foo=1", "foo=1,foo=1"),
    _state("duplicate key, other value", "foo=1", "foo=1,foo=2"),
    _state("duplicate key across lines", "foo=1", "foo=1", "foo=1"),
    _state("duplicate key across lines, other value", "foo=1", "foo=1", "foo=2"),
    _state("duplicate key, others kept in order", "foo=1,bar=2,baz=4", "foo=1,bar=2,foo=3,baz=4"),
    _state("duplicate key with OWS", "foo=1,bar=2", " foo=1 ,bar=2", "\tfoo=2"),
    _state("duplicate key, then an invalid member", "", "foo=1,foo=2,BAD=3"),
    _state("duplicates do not count to 32", _32, *_BARS, "bar31=31,bar01=x,bar32=32"),
    _state("all key and value characters", f"{_KEY}={_VALUE}", f"{_KEY}={_VALUE}"),
    _state("all characters, with @", f"{_KEY_AT}={_VALUE}", f"{_KEY_AT}={_VALUE}"),
    _state("OWS around members", "foo=1,bar=2,baz=3", "foo=1 \t , \t bar=2, \t baz=3"),
    _state("OWS tabs", "foo=1,bar=2,baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"),
    _state("OWS leading space", "foo=1", " foo=1"),
    _state("OWS leading tab", "foo=1", "\tfoo=1"),
    _state("OWS trailing space", "foo=1", "foo=1 "),
    _state("OWS trailing tab", "foo=1", "foo=1\t"),
    _state("OWS both", "foo=1", "\t foo=1 \t"),
    _state("value keeps leading spaces", "foo=  1", "foo=  1"),
    _state("key with space", "", "foo =1"),
    _state("key uppercase", "", "FOO=1"),
    _state("key with dot", "", "foo.bar=1"),
    _state("key starting with @", "", "@foo=1,bar=2"),
    _state("key ending with @", "foo@=1,bar=2", "foo@=1,bar=2"),
    _state("key with @@", "foo@@bar=1,bar=2", "foo@@bar=1,bar=2"),
    _state("key with two @", "foo@bar@baz=1,bar=2", "foo@bar@baz=1,bar=2"),
    _state("key starting with a digit", "1abc=1,2@x=2", "1abc=1,2@x=2"),
    _state("32 members", _32, *_BARS, "bar31=31,bar32=32"),
    _state("33 members", "", *_BARS, "bar31=31,bar32=32,bar33=33"),
    _state("key of 256", "foo=1," + "z" * 256 + "=1", "foo=1", "z" * 256 + "=1"),
    _state("key of 257", "", "foo=1", "z" * 257 + "=1"),
    _state("tenant 241, vendor 14", f"foo=1,{_T241_V14}=1", "foo=1", f"{_T241_V14}=1"),
    _state("tenant 242, vendor 1", f"foo=1,{'t' * 242}@v=1", "foo=1", f"{'t' * 242}@v=1"),
    _state("vendor 15", f"foo=1,t@{'v' * 15}=1", "foo=1", f"t@{'v' * 15}=1"),
    _state("value of 256", "foo=" + "v" * 256, "foo=" + "v" * 256),
    _state("value of 257", "", "foo=" + "v" * 257),
    _state("value with =", "", "foo=bar=baz"),
    _state("value empty", "", "foo=,bar=3"),
    _state("member without =", "", "foo,bar=3"),
    _state("value with a tab", "", "foo=a\tb"),
    _state("value not ASCII", "", "foo=caf\u00e9"),
]

CASES = TRACEPARENT_CASES + TRACESTATE_CASES


# --- the real server -------------------------------------------------------------------------

_provider = TracerProvider()
_tracer = _provider.get_tracer("test_propagation")
_hook_attrs = threading.local()


def _describe(span_context: SpanContext) -> dict[str, Any] | None:
    if not span_context.is_valid:
        return None
    return {
        "trace_id": trace.format_trace_id(span_context.trace_id),
        "span_id": trace.format_span_id(span_context.span_id),
        "trace_flags": int(span_context.trace_flags),
        "remote": span_context.is_remote,
        "trace_state": span_context.trace_state.to_header(),
    }


class _Handler(BaseHTTPRequestHandler):
    """Extracts from `self.headers`, starts a child span, injects it; replies with all as JSON."""

    def do_GET(self) -> None:
        ctx = PROPAGATOR.extract(self.headers)
        parent = trace.get_current_span(ctx).get_span_context()
        with _tracer.start_as_current_span("child", context=ctx):
            outgoing: dict[str, str] = {}
            PROPAGATOR.inject(outgoing)
        attrs = _hook_attrs.__dict__.pop("attrs", {})
        hook_parent = None
        if "trace.parent.trace_id" in attrs:
            hook_parent = span_context_from_parent(
                attrs["trace.parent.trace_id"],
                attrs["trace.parent.span_id"],
                attrs["trace.parent.trace_flags"],
                attrs.get("trace.parent.trace_state"),
            )
        body = json.dumps(
            {
                "parent": _describe(parent),
                "hook_parent": _describe(hook_parent) if hook_parent else None,
                "outgoing": outgoing,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _record_start(op_id: int, attrs: dict[str, Any]) -> None:
    _hook_attrs.attrs = dict(attrs)  # the hook runs on the handler's thread, just before it


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    """A `ThreadingHTTPServer` on a free port, serving every test of this module."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield ("127.0.0.1", httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def hooked_server(server: tuple[str, int]) -> Iterator[tuple[str, int]]:
    """The server with hooktel's http.server hook points and an instrument recording starts.

    Per test, so a registry reset between tests (by any conftest) cannot undo it.
    """
    was_instrumented = hooktel.httpserver._original is not None
    hooktel.httpserver.instrument()
    ref = hooktel.attach(
        hooktel.Instrument(
            kind="http",
            name="test_propagation",
            version="1.0",
            on_operation_start=_record_start,
        )
    )
    try:
        yield server
    finally:
        ref.detach()
        if not was_instrumented:
            hooktel.httpserver.uninstrument()


def _send(address: tuple[str, int], headers: Headers) -> dict[str, Any]:
    """GET with `headers` sent line by line, repeated names included."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.putrequest("GET", "/", skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 200
        result: dict[str, Any] = json.loads(response.read())
        return result
    finally:
        conn.close()


def _expected_parent(case: Case) -> dict[str, Any] | None:
    if case.flags is None:
        return None
    return {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "trace_flags": case.flags,
        "remote": True,
        "trace_state": case.tracestate,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_server_extracts_and_forwards(server: tuple[str, int], case: Case) -> None:
    seen = _send(server, case.headers)
    assert seen["parent"] == _expected_parent(case)
    match = OUTGOING.fullmatch(seen["outgoing"]["traceparent"])
    assert match is not None
    trace_id, span_id, _ = match.groups()
    if case.flags is None:
        assert trace_id != TRACE_ID  # a new trace
    else:
        assert (trace_id, span_id != SPAN_ID) == (TRACE_ID, True)  # same trace, new parent-id
    assert seen["outgoing"].get("tracestate", "") == case.tracestate


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hook_layer_builds_the_same_parent(hooked_server: tuple[str, int], case: Case) -> None:
    """The server side's `span_context_from_parent` follows the propagator's rules."""
    seen = _send(hooked_server, case.headers)
    assert seen["hook_parent"] == _expected_parent(case)


def test_hook_layer_keeps_a_long_tracestate_whole(hooked_server: tuple[str, int]) -> None:
    members = ",".join(f"k{i:02d}={'v' * 252}" for i in range(32))  # 8223 characters, valid
    seen = _send(hooked_server, (("traceparent", TP01), ("tracestate", members)))
    assert seen["parent"]["trace_state"] == members
    assert seen["hook_parent"] == seen["parent"]


# --- the propagator directly -----------------------------------------------------------------


def _context(
    trace_id: int, span_id: int, flags: int = 1, state: TraceState | None = None
) -> SpanContext:
    return SpanContext(trace_id, span_id, False, TraceFlags(flags), state)


def _message(headers: Headers) -> email.message.Message:
    message = email.message.Message()
    for name, value in headers:
        message[name] = value
    return message


def _dict_of_lists(headers: Headers) -> dict[str, list[str]]:
    """Names kept as sent: `TraceParent` and `traceparent` are two keys of one header."""
    carrier: dict[str, list[str]] = {}
    for name, value in headers:
        carrier.setdefault(name, []).append(value)
    return carrier


@pytest.mark.parametrize("carrier_type", [_message, _dict_of_lists])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_extract_then_inject(case: Case, carrier_type: Any) -> None:
    ctx = PROPAGATOR.extract(carrier_type(case.headers))
    assert _describe(trace.get_current_span(ctx).get_span_context()) == _expected_parent(case)
    out: dict[str, str] = {}
    PROPAGATOR.inject(out, context=ctx)
    if case.flags is None:
        assert out == {}
    else:
        expected = {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-{case.flags:02x}"}
        if case.tracestate:
            expected["tracestate"] = case.tracestate
        assert out == expected


def test_no_parent_returns_the_context_given() -> None:
    given = trace.set_span_in_context(NonRecordingSpan(_context(0xABC, 0xDEF)), Context())
    assert PROPAGATOR.extract({"traceparent": [TP01, TP01]}, context=given) is given
    assert PROPAGATOR.extract({"traceparent": "garbage"}, context=given) is given
    assert PROPAGATOR.extract({}, context=given) is given


def test_a_getter_passed_in_is_used_as_is() -> None:
    class FirstOnly(textmap.Getter[dict[str, list[str]]]):
        def get(self, carrier: dict[str, list[str]], key: str) -> list[str] | None:
            values = carrier.get(key)
            return values[:1] if values else None

        def keys(self, carrier: dict[str, list[str]]) -> list[str]:
            return list(carrier)

    carrier = {"traceparent": [TP01, TP01], "tracestate": ["a=1", "b=2"]}
    span_context = trace.get_current_span(PROPAGATOR.extract(carrier, getter=FirstOnly()))
    assert span_context.get_span_context().trace_state.to_header() == "a=1"


_NAMES = st.sampled_from(["traceparent", "TraceParent", "tracestate", "TRACESTATE", "x-other"])
_LINE = st.sampled_from(
    [TP01, TP00, f"cc-{TRACE_ID}-{SPAN_ID}-01", "00-bad", "foo=1", "a=1,b=2", ""]
)
_ITEM = st.one_of(st.none(), _LINE, _LINE.map(str.encode), st.integers())
_VALUE = st.one_of(_ITEM, st.lists(_ITEM, max_size=3), st.tuples(_ITEM, _ITEM))


def _as_lines(value: Any) -> list[str]:
    """What a carrier value means: its lines, with None (and non-text) absent."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [
        v.decode("latin-1") if isinstance(v, bytes) else v
        for v in items
        if isinstance(v, (str, bytes))
    ]


class _Raw(textmap.Getter[dict[str, Any]]):
    """A getter built by hand: hands back whatever the carrier holds under the exact key."""

    def get(self, carrier: dict[str, Any], key: str) -> Any:
        return carrier.get(key)

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return list(carrier)


@given(carrier=st.dictionaries(_NAMES, _VALUE, max_size=5))
def test_extract_treats_none_in_a_carrier_as_absent(carrier: dict[str, Any]) -> None:
    """None, [None], [line, None], bytes, numbers: never raises, None is as if not sent."""
    cleaned = {name: lines for name, value in carrier.items() if (lines := _as_lines(value))}
    for getter in (textmap.default_getter, _Raw()):
        got = PROPAGATOR.extract(carrier, getter=getter)
        expected = PROPAGATOR.extract(cleaned, getter=getter)
        assert _describe(trace.get_current_span(got).get_span_context()) == _describe(
            trace.get_current_span(expected).get_span_context()
        )


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": None},
        {"traceparent": [None]},
        {"traceparent": [None, None]},
        {"traceparent": TP01, "tracestate": None},
        {"traceparent": [TP01, None], "tracestate": [None, "a=1"]},
    ],
    ids=repr,
)
def test_extract_with_none_values(carrier: dict[str, Any]) -> None:
    span_context = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    if carrier["traceparent"] in (None, [None], [None, None]):
        assert not span_context.is_valid
    else:
        assert (span_context.trace_id, span_context.span_id) == (
            int(TRACE_ID, 16),
            int(SPAN_ID, 16),
        )
        assert span_context.trace_state.to_header() == ("a=1" if carrier.get("tracestate") else "")


def test_extract_keeps_only_the_flags_the_spec_defines() -> None:
    ctx = PROPAGATOR.extract({"traceparent": TP01[:-2] + "ff"})
    assert trace.get_current_span(ctx).get_span_context().trace_flags == KEPT_FLAGS


def test_fields() -> None:
    assert PROPAGATOR.fields == {"traceparent", "tracestate"}


# --- inject ----------------------------------------------------------------------------------


def _inject(span_context: SpanContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(span_context)))
    return carrier


def test_inject_writes_version_00_and_the_state() -> None:
    state = W3CTraceState([("1abc", "x"), ("foo@", "y")])
    assert _inject(_context(0xABC, 0xDEF, 1, state)) == {
        "traceparent": f"00-{0xABC:032x}-{0xDEF:016x}-01",
        "tracestate": "1abc=x,foo@=y",
    }


def test_inject_from_the_current_span() -> None:
    with trace.use_span(NonRecordingSpan(_context(0xABC, 0xDEF, 0))):
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
    assert carrier == {"traceparent": f"00-{0xABC:032x}-{0xDEF:016x}-00"}


def test_inject_clears_flags_the_spec_does_not_define() -> None:
    assert _inject(_context(0xABC, 0xDEF, 0xFF))["traceparent"].endswith(f"-{KEPT_FLAGS:02x}")


def test_inject_nothing_without_a_valid_span_context() -> None:
    assert _inject(_context(0xABC, 0)) == {}
    assert _inject(_context(0, 0xDEF)) == {}
    assert _inject(trace.INVALID_SPAN_CONTEXT) == {}


def _member(key: str, size: int) -> tuple[str, str]:
    """A member whose entry (`key=value`) is `size` characters long."""
    return key, "v" * (size - len(key) - 1)


def test_inject_truncates_long_state_by_whole_entries() -> None:
    # 32 entries of 256 characters: 8223 with commas, over the 8192 a receiver keeps
    members = [_member(f"k{i:02d}", 256) for i in range(32)]
    out = _inject(_context(0xABC, 0xDEF, 1, W3CTraceState(members)))
    assert out["tracestate"] == _tracestate.format_members(members[:-1])


def test_truncate_removes_large_entries_first_from_the_right() -> None:
    members = [_member("a", 100), _member("big1", 200), _member("b", 100), _member("big2", 200)]
    assert _tracestate.truncate(members, 10_000) == members
    assert _tracestate.truncate(members, 500) == [members[0], members[1], members[2]]
    assert _tracestate.truncate(members, 300) == [members[0], members[2]]


def test_truncate_then_removes_from_the_end() -> None:
    members = [_member("a", 100), _member("big", 129), _member("b", 100), _member("c", 100)]
    assert _tracestate.truncate(members, 250) == [members[0], members[2]]
    assert _tracestate.truncate(members, 99) == []


# --- W3CTraceState and the SDK ---------------------------------------------------------------

LEVEL_2_ONLY = [("1abc", "1"), ("foo@", "2"), ("t@" + "v" * 15, "3"), ("a@b@c", "4")]


def test_opentelemetry_trace_state_drops_these_keys() -> None:
    """Why `W3CTraceState` exists: the premise of the tests below."""
    assert len(TraceState(LEVEL_2_ONLY)) == 0


def test_trace_state_keeps_level_2_keys_through_mutations() -> None:
    state = W3CTraceState(LEVEL_2_ONLY)
    assert state.to_header() == "1abc=1,foo@=2,t@vvvvvvvvvvvvvvv=3,a@b@c=4"
    added = state.add("9x@y", "5")
    assert isinstance(added, W3CTraceState)
    assert added.to_header() == "9x@y=5," + state.to_header()
    updated = added.update("foo@", "6")
    assert updated.to_header() == "foo@=6,9x@y=5,1abc=1,t@vvvvvvvvvvvvvvv=3,a@b@c=4"
    assert updated.delete("1abc").to_header() == "foo@=6,9x@y=5,t@vvvvvvvvvvvvvvv=3,a@b@c=4"


def test_trace_state_refuses_what_the_grammar_refuses() -> None:
    state = W3CTraceState([("a", "1"), ("Bad", "2"), ("a", "3"), ("b", "x=y"), ("@c", "4")])
    assert state.to_header() == "a=1"
    assert state.add("@x", "1") is state
    assert state.add("a", "9") is state
    assert state.update("x", "") is state
    assert state.delete("missing") is state
    assert len(W3CTraceState([(f"k{i}", "v") for i in range(33)])) == 0
    full = W3CTraceState([(f"k{i}", "v") for i in range(32)])
    assert full.add("new", "v") is full
    assert full.update("new", "v") is full
    assert full.update("k31", "w").to_header().startswith("k31=w,k0=v")


def test_trace_state_from_header_combines_lines() -> None:
    assert W3CTraceState.from_header(["foo@=1", "2x=2"]).to_header() == "foo@=1,2x=2"
    assert W3CTraceState.from_header(["a=1", "a=2"]).to_header() == "a=1"
    assert len(W3CTraceState.from_header(["a=1", "A=2"])) == 0


def test_trace_state_pickles() -> None:
    state = pickle.loads(pickle.dumps(W3CTraceState(LEVEL_2_ONLY)))
    assert isinstance(state, W3CTraceState)
    assert list(state.items()) == LEVEL_2_ONLY


def test_sdk_and_otlp_carry_every_member() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    header = "1abc=1,foo@=2,t@vvvvvvvvvvvvvvv=3"
    ctx = PROPAGATOR.extract({"traceparent": TP01, "tracestate": header})
    with provider.get_tracer("t").start_as_current_span("server", context=ctx) as span:
        assert span.get_span_context().trace_state.to_header() == header
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
    assert carrier["tracestate"] == header
    (finished,) = exporter.get_finished_spans()
    assert finished.parent is not None and finished.parent.trace_state.to_header() == header
    encoded = encode_spans([finished]).resource_spans[0].scope_spans[0].spans[0]
    assert encoded.trace_state == header
    assert encoded.trace_id.hex() == TRACE_ID and encoded.parent_span_id.hex() == SPAN_ID


# --- the server side's functions -------------------------------------------------------------


def test_span_context_from_parent() -> None:
    span_context = span_context_from_parent(TRACE_ID, SPAN_ID, 0xFF, "foo@=1,,bar=2")
    assert _describe(span_context) == {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "trace_flags": KEPT_FLAGS,
        "remote": True,
        "trace_state": "foo@=1,bar=2",
    }
    assert isinstance(span_context.trace_state, W3CTraceState)


def test_span_context_from_parent_discards_an_invalid_state_and_keeps_the_parent() -> None:
    for raw in ("foo=1,FOO=2", "FOO=1", None, ""):
        span_context = span_context_from_parent(TRACE_ID, SPAN_ID, 1, raw)
        assert span_context.is_valid and span_context.trace_flags == 1
        assert len(span_context.trace_state) == 0
        assert isinstance(span_context.trace_state, W3CTraceState)


def test_parse_tracestate() -> None:
    assert parse_tracestate("a=1,foo=bar=baz") is None
    empty = parse_tracestate(" , ")
    assert empty is not None and len(empty) == 0
    state = parse_tracestate("a=1, b@=2")
    assert state is not None and list(state.items()) == [("a", "1"), ("b@", "2")]


def test_tracestate_rules_module() -> None:
    assert _tracestate.parse("a=1 ,\tb= 2") == [("a", "1"), ("b", " 2")]
    assert _tracestate.parse("") == []
    assert _tracestate.parse("a=1,a=2") == [("a", "1")]
    assert len(_tracestate.parse(",".join(f"k{i}=v" for i in range(32))) or []) == 32
    assert _tracestate.parse(",".join(f"k{i}=v" for i in range(33))) is None
    assert _tracestate.combine(["a=1", "b=2"]) == "a=1,b=2"
    assert _tracestate.is_valid_key("0")
    assert not _tracestate.is_valid_key("\u0661")  # an Arabic-Indic digit is not DIGIT
    assert not _tracestate.is_valid_value("a ")


_KEYS = st.sampled_from(["a", "b", "foo", "1abc", "t@v", "z" * 256])
_VALUES = st.sampled_from(["1", "x y", "~", "v" * 256])


@given(
    members=st.lists(st.tuples(_KEYS, _VALUES), max_size=40),
    separators=st.lists(st.sampled_from([",", " ,", ",\t", ", ,"]), min_size=40, max_size=40),
)
def test_tracestate_keeps_the_first_of_each_key(
    members: list[tuple[str, str]], separators: list[str]
) -> None:
    """Any list of valid members, repeated keys included: the first of each key, in order."""
    value = "".join(f"{sep}{k}={v}" for sep, (k, v) in zip(separators, members, strict=False))
    first: dict[str, str] = {}
    for key, val in members:
        first.setdefault(key, val)
    assert _tracestate.parse(value) == list(first.items())
    state = W3CTraceState.from_header([value])
    assert list(state.items()) == list(first.items())


# --- registration and imports ----------------------------------------------------------------


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_otel_propagators_env_selects_it() -> None:
    code = (
        "from opentelemetry import propagate\n"
        "print([type(p).__name__ for p in propagate.get_global_textmap()._propagators])"
    )
    out = _run(code, OTEL_PROPAGATORS="hooktel_tracecontext,baggage")
    assert out == "['TraceContextPropagator', 'W3CBaggagePropagator']"


def test_hooktel_and_its_tracestate_rules_import_no_opentelemetry() -> None:
    code = (
        "import sys, hooktel, hooktel._http.tracestate\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert _run(code) == "[]"
