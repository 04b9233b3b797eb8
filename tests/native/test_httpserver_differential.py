"""The compiled `begin_http` and operation against their Python twins, through `http.server`.

`http.server`'s hook point is Python (it shadows handler methods); what it reports
comes from `begin_http` and the operation, which are the core's where it runs.
Raw requests (any request line, many and duplicate headers, folded lines, Latin-1
bytes, bodies cut short) go through an in-memory handler twice: once with the core's
`begin_http`, once with the twin's. `begin_http` is also compared directly, on
arguments no server would send.
"""

from __future__ import annotations

import io
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hooktel
import hooktel.httpserver
from hooktel import _core
from hooktel._http import request as _http
from tests.native.twins import Faults, Witness, outcome_of, witnessing

core = _core.core
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
line_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=10)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/raise"):
            raise ValueError("handler failed")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(int(self.path[-3:]) if self.path[-3:].isdigit() else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Folded", "a\r\n b")
        self.end_headers()
        self.wfile.write(b"hello")

    do_POST = do_PURGE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CutShort(io.BytesIO):
    """A request stream whose body read fails, as a reset connection's does."""

    def read(self, size: int | None = -1) -> bytes:
        if size:
            raise ConnectionResetError("reset mid-body")
        return b""


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PURGE", "BREW"]))
    target = draw(
        st.sampled_from(["/", "/a?q=1", "http://x/abs?z", "*", "example.com:443", "/raise", "/204"])
        | line_text.map(lambda t: "/" + t)
    )
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "Host",
                        "User-Agent",
                        "Content-Length",
                        "traceparent",
                        "tracestate",
                        "X-Capture",
                        "Authorization",
                        "X-Api_Key",
                    ]
                ),
                st.sampled_from(
                    ["example.com:8080", TRACEPARENT, "0", "3", "a=1", "evil/x", "first\r\n second"]
                )
                | line_text,
            ),
            max_size=6,
        )
    )
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (head + "\r\nabc").encode("latin-1"), draw(st.booleans())


def serve(raw: bytes, cut_short: bool) -> list[Any]:
    handler = Handler.__new__(Handler)  # no socket: the request and response are in memory
    handler.rfile = (CutShort if cut_short else io.BytesIO)(raw)
    handler.wfile = io.BytesIO()
    handler.client_address = ("10.0.0.1", 5555)
    handler.server = SimpleNamespace(server_address=("127.0.0.1", 8000))
    handler.connection = handler.request = SimpleNamespace()
    handler.close_connection = True
    try:
        handler.handle_one_request()
        raised = None
    except BaseException as exc:
        raised = exc
    return [outcome_of(raised), handler.wfile.getvalue()]


def run(begin: Any, raw: bytes, cut_short: bool, fault: Faults, mp: pytest.MonkeyPatch) -> Witness:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hooktel.httpserver, "_begin_http", begin)
        with witnessing(fault, mp) as witness:
            witness.outcome = serve(raw, cut_short)
    response = witness.outcome[1]
    witness.outcome[1] = response.split(b"\r\n", 1)[0]  # the status line; the Date differs
    return witness


faults = st.builds(
    Faults,
    raising=st.frozensets(st.sampled_from(["start", "inject", "end", "error"])),
    present=st.frozensets(st.sampled_from(["start", "inject", "end", "error"]), min_size=1),
    inject=st.sampled_from([None, {"x-a": "1"}, {"connection": "close"}]),
    capture_request=st.sampled_from([(), ("x-capture", "authorization", "x_api-key", "host")]),
    capture_response=st.sampled_from([(), ("content-type", "x-folded")]),
)


@pytest.fixture(autouse=True, scope="module")
def instrumented() -> Any:
    was = hooktel.httpserver._original is not None
    hooktel.httpserver.instrument()
    yield
    if not was:
        hooktel.httpserver.uninstrument()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=raw_requests(), fault=faults)
def test_http_server_reports_the_same(
    request: tuple[bytes, bool], fault: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert core is not None
    native = run(core.begin_http, *request, fault, monkeypatch)
    python = run(_http.begin_http, *request, fault, monkeypatch)
    assert native.normalised() == python.normalised()


header_value = st.one_of(
    st.text(max_size=12),
    st.binary(max_size=12),
    st.sampled_from(
        [
            TRACEPARENT,
            " " + TRACEPARENT,
            TRACEPARENT + "-x",
            "01" + TRACEPARENT[2:],
            "ff" + TRACEPARENT[2:],
            TRACEPARENT.upper(),
            "[::1]",
            "[::1]:80",
            "h:0",
            "h:65535",
            "a" * 300,
            "é.example:8",
            "a=1,b=2",
            "",
        ]
    ),
)
header_name = st.sampled_from(
    [
        "host",
        "user-agent",
        "content-length",
        "traceparent",
        "tracestate",
        "x-capture",
        "authorization",
        "x-api_key",
    ]
)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "CONNECT", "OPTIONS", "", "BREW", "ÉCRIS"]),
    scheme=st.sampled_from(["http", "https", "ftp"]),
    path=st.text(max_size=15) | st.sampled_from(["*", "http://h:1/p", "x://", "1http://h"]),
    query=st.text(max_size=6),
    headers=st.lists(
        st.one_of(
            st.tuples(header_name, header_value),
            st.tuples(header_name.map(str.encode), st.binary(max_size=12)),
        ),
        max_size=8,
    ),
    server=st.sampled_from([None, ("127.0.0.1", 80), ("::1", 8443), ["h", "p"]]),
    client=st.sampled_from([None, ("10.0.0.1", 5), ("c", None)]),
    protocol=st.sampled_from(["", "1.1", "2"]),
    fault=faults,
)
def test_begin_http_gives_the_same_attributes(
    fault: Faults, monkeypatch: pytest.MonkeyPatch, **request: Any
) -> None:
    assert core is not None
    witnesses = []
    for begin in (core.begin_http, _http.begin_http):
        with witnessing(fault, monkeypatch) as witness:
            hooks = hooktel.native_hooks()
            try:
                begin(hooks, **request).end()
                raised = None
            except BaseException as exc:
                raised = exc
            witness.outcome = outcome_of(raised)
        witnesses.append(witness.normalised())
    assert witnesses[0] == witnesses[1]


@given(value=st.text(max_size=70) | st.sampled_from([TRACEPARENT, f" \t{TRACEPARENT} "]))
def test_parse_traceparent_is_the_twin(value: str) -> None:
    from hooktel._http.traceparent import parse_traceparent

    assert core is not None
    parsed = parse_traceparent(value)
    assert core.parse_traceparent(value) == (tuple(parsed) if parsed else None)
