"""Header capture and redaction, size caps, and the per-operation lifecycle."""

from __future__ import annotations

import pytest

import hooktel
from hooktel._http.headers import (
    MAX_HEADER_VALUE,
    MAX_MESSAGE,
    MAX_STACKTRACE,
    MAX_URL,
    REDACTED,
    HeaderCapture,
    is_sensitive,
)

from .helpers import TRACEPARENT, Recorder, start

KIB = 1024

SENSITIVE = [
    "authorization",
    "Authorization",
    "proxy-authorization",
    "cookie",
    "COOKIE",
    "set-cookie",
    "x-api-key",
    "api-key",
    "X-Goog-Api-Key",
    "x-auth-token",
    "token",
    "x-session-id",
    "session",
    "x-client-secret",
    "x-password",
    "x-csrf-token",
    "x-xsrf-csrf",
]
NOT_SENSITIVE = ["accept", "user-agent", "x-request-id", "content-type", "x-apikey", "host"]


def test_caps_are_the_documented_sizes() -> None:
    assert (MAX_HEADER_VALUE, MAX_URL, MAX_MESSAGE, MAX_STACKTRACE) == (
        8 * KIB,
        64 * KIB,
        4 * KIB,
        16 * KIB,
    )
    assert REDACTED == "REDACTED"


@pytest.mark.parametrize("name", SENSITIVE)
def test_sensitive_names(name: str) -> None:
    assert is_sensitive(name)


@pytest.mark.parametrize("name", NOT_SENSITIVE)
def test_ordinary_names(name: str) -> None:
    assert not is_sensitive(name)


def test_header_capture_collects_values_in_order_and_redacts() -> None:
    capture = HeaderCapture("http.request.header.", ["x-a", "cookie", "x-missing"])
    pairs = [("x-a", "1"), ("cookie", "c=1"), ("x-b", "no"), ("x-a", "2"), ("cookie", "c=2")]
    assert capture.collect(pairs) == {
        "http.request.header.x-a": ("1", "2"),
        "http.request.header.cookie": (REDACTED, REDACTED),
    }
    assert HeaderCapture("p.", []).collect(pairs) == {}


def test_hooks_have_no_header_capture_when_no_instrument_asks() -> None:
    with hooktel.attach(hooktel.Instrument("http", "plain", "1", on_operation_end=print)):
        hooks = hooktel.native_hooks()
        assert hooks is not None
        assert hooks.request_capture is None and hooks.response_capture is None


# --- through begin_http and the operation ----------------------------------------------


def test_captured_request_headers_with_redaction() -> None:
    names = [n.lower() for n in SENSITIVE] + ["x-request-id", "accept"]
    rec = Recorder(capture_request_headers=(*dict.fromkeys(names), "X-Not-Sent"))
    rec.attach()
    headers = [("host", "example.com")] + [(n.lower(), "secret-value") for n in SENSITIVE]
    headers += [("x-request-id", "abc"), ("accept", "a/b"), ("accept", "c/d")]
    start(headers=headers).end()
    attrs = rec.attrs("start")
    captured = {k: v for k, v in attrs.items() if k.startswith("http.request.header.")}
    for name in dict.fromkeys(n.lower() for n in SENSITIVE):
        count = sum(1 for n in SENSITIVE if n.lower() == name)
        assert captured.pop(f"http.request.header.{name}") == (REDACTED,) * count
    assert captured == {
        "http.request.header.x-request-id": ("abc",),
        "http.request.header.accept": ("a/b", "c/d"),
    }
    assert "secret-value" not in repr(attrs)


def test_uncaptured_headers_are_not_reported() -> None:
    rec = Recorder()
    rec.attach()
    start(headers=[("host", "h"), ("x-request-id", "abc"), ("authorization", "Bearer x")]).end()
    assert not any(k.startswith("http.request.header.") for k in rec.attrs("start"))


def test_captured_response_headers_with_redaction() -> None:
    rec = Recorder(capture_response_headers=("Content-Type", "Set-Cookie", "X-Session-Id"))
    rec.attach()
    op = start()
    op.respond(
        200,
        [
            ("content-type", "text/plain"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-session-id", "s"),
            ("x-other", "o"),
        ],
    )
    op.end()
    end = rec.attrs("end")
    assert end["http.response.status_code"] == 200
    assert {k: v for k, v in end.items() if k.startswith("http.response.header.")} == {
        "http.response.header.content-type": ("text/plain",),
        "http.response.header.set-cookie": (REDACTED, REDACTED),
        "http.response.header.x-session-id": (REDACTED,),
    }


def test_captured_header_value_is_capped_at_8_kib() -> None:
    rec = Recorder(capture_request_headers=("x-big", "x-exact"))
    rec.attach()
    big, exact = "b" * (20 * KIB), "e" * (8 * KIB)
    start(headers=[("host", "h"), ("x-big", big), ("x-exact", exact)]).end()
    attrs = rec.attrs("start")
    assert attrs["http.request.header.x-big"] == ("b" * (8 * KIB),)
    assert attrs["http.request.header.x-exact"] == (exact,)


def test_response_header_value_is_capped_at_8_kib() -> None:
    rec = Recorder(capture_response_headers=("x-big",))
    rec.attach()
    op = start()
    op.respond(200, [("x-big", "v" * (9 * KIB))])
    op.end()
    assert rec.attrs("end")["http.response.header.x-big"] == ("v" * (8 * KIB),)


def test_user_agent_is_capped_at_8_kib() -> None:
    rec = Recorder()
    rec.attach()
    ua = "u" * (10 * KIB)
    start(headers=[("host", "h"), ("user-agent", ua)]).end()
    assert rec.attrs("start")["user_agent.original"] == ua[: 8 * KIB]


def test_tracestate_is_never_cut_inside_a_member() -> None:
    """Kept whole past 8 KiB; a joined state over 64 KiB is left out, not truncated."""
    rec = Recorder()
    rec.attach()
    long_state = ",".join(f"k{i}=" + "v" * 250 for i in range(40))  # about 10 KiB
    too_long = "k=" + "v" * (64 * KIB)
    for state in (long_state, too_long):
        start(headers=[("host", "h"), ("traceparent", TRACEPARENT), ("tracestate", state)])
    first, second = (e[3] for e in rec.events("start"))
    assert first["trace.parent.trace_state"] == long_state
    assert "trace.parent.trace_state" not in second
    assert second["trace.parent.trace_id"] == TRACEPARENT[3:35]


def test_other_method_is_capped_at_8_kib() -> None:
    rec = Recorder()
    rec.attach()
    start(method="X" * (10 * KIB)).end()
    attrs = rec.attrs("start")
    assert attrs["http.request.method"] == "_OTHER"
    assert attrs["http.request.method_original"] == "X" * (8 * KIB)


def test_urls_are_capped_at_64_kib() -> None:
    rec = Recorder()
    rec.attach()
    path, query = "/" + "p" * (70 * KIB), "q=" + "v" * (70 * KIB)
    start(path=path, query=query, headers=[("host", "example.com")]).end()
    attrs = rec.attrs("start")
    assert attrs["url.path"] == path[: 64 * KIB]
    assert attrs["url.query"] == query[: 64 * KIB]
    assert attrs["url.full"] == f"http://example.com{path}"[: 64 * KIB]


def test_url_just_under_the_cap_is_whole() -> None:
    rec = Recorder()
    rec.attach()
    prefix = "http://example.com"
    path = "/" + "p" * (64 * KIB - len(prefix) - 1)
    start(path=path, headers=[("host", "example.com")]).end()
    assert rec.attrs("start")["url.full"] == prefix + path
    assert len(prefix + path) == 64 * KIB


def test_error_message_capped_at_4_kib_and_stacktrace_at_16_kib() -> None:
    rec = Recorder()
    rec.attach()
    op = start()
    try:
        raise ValueError("m" * (30 * KIB))
    except ValueError as exc:
        op.fail("ValueError", str(exc), exc)
    attrs = rec.attrs("error")
    assert attrs["error.message"] == "m" * (4 * KIB)
    stack = attrs["exception.stacktrace"]
    assert len(stack) == 16 * KIB
    assert stack.endswith("m" * 100 + "\n")  # the end of the trace is what is kept


def test_short_error_is_whole() -> None:
    rec = Recorder()
    rec.attach()
    op = start()
    try:
        raise KeyError("k")
    except KeyError as exc:
        op.fail_with(exc)
    attrs = rec.attrs("error")
    assert attrs["error.type"] == "KeyError"
    assert attrs["error.message"] == "'k'"
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert attrs["exception.stacktrace"].endswith("KeyError: 'k'\n")


def test_error_without_exception_has_no_stacktrace() -> None:
    rec = Recorder()
    rec.attach()
    op = start()
    op.respond(504, [])
    op.fail("TimeoutError", "took too long")
    attrs = rec.attrs("error")
    assert "exception.stacktrace" not in attrs
    assert attrs["error.type"] == "TimeoutError"
    assert attrs["http.response.status_code"] == 504
    assert attrs["operation.id"] == op.id
    assert isinstance(attrs["operation.duration"], int) and attrs["operation.duration"] >= 0


# --- lifecycle -------------------------------------------------------------------------


def test_start_inject_end_exactly_once() -> None:
    rec = Recorder(inject=lambda op_id: {"x-trace": str(op_id)})
    rec.attach()
    op = start()
    assert op.inject() == {"x-trace": str(op.id)}
    assert op.inject() == {}  # asked once, never again
    op.end()
    assert [(e[0], e[2]) for e in rec.log] == [("start", op.id), ("inject", op.id), ("end", op.id)]


def test_nothing_after_end() -> None:
    rec = Recorder(inject=lambda op_id: {"x-a": "1"})
    rec.attach()
    op = start()
    op.end()
    assert op.inject() == {}
    op.end()
    op.fail("ValueError", "late")
    op.fail_with(RuntimeError("late"))
    assert [e[0] for e in rec.log] == ["start", "end"]


def test_nothing_after_error() -> None:
    rec = Recorder(inject=lambda op_id: {"x-a": "1"})
    rec.attach()
    op = start()
    op.fail("ClientDisconnected", "gone")
    op.end()
    op.fail("ValueError", "again")
    assert op.inject() == {}
    assert [e[0] for e in rec.log] == ["start", "error"]
    assert rec.attrs("error")["error.type"] == "ClientDisconnected"


def test_end_attributes() -> None:
    rec = Recorder()
    rec.attach()
    op = start()
    op.respond(201, [])
    op.body_size = 123
    op.route = "/items/{id}"
    op.end()
    attrs = rec.attrs("end")
    assert attrs["operation.id"] == op.id
    assert attrs["http.response.status_code"] == 201
    assert attrs["http.response.body.size"] == 123
    assert attrs["http.route"] == "/items/{id}"
    assert isinstance(attrs["operation.duration"], int) and attrs["operation.duration"] >= 0


def test_operation_ids_match_and_differ_per_request() -> None:
    rec = Recorder()
    rec.attach()
    first, second = start(), start()
    second.end()
    first.end()
    assert first.id != second.id and first.id > 0 and second.id > first.id
    assert [(e[0], e[2], e[3]["operation.id"]) for e in rec.log] == [
        ("start", first.id, first.id),
        ("start", second.id, second.id),
        ("end", second.id, second.id),
        ("end", first.id, first.id),
    ]


def test_start_attribute_values_have_allowed_types_and_no_none() -> None:
    rec = Recorder(capture_request_headers=("accept",))
    rec.attach()
    start(
        method="POST",
        path="/p",
        query="a=1",
        headers=[
            ("host", "[::1]:8443"),
            ("user-agent", "ua"),
            ("content-length", "12"),
            ("accept", "x"),
            ("traceparent", TRACEPARENT),
            ("tracestate", "a=1"),
        ],
    ).end()
    for event in ("start", "end"):
        for key, value in rec.attrs(event).items():
            assert value is not None, key
            if isinstance(value, tuple):
                assert all(isinstance(v, str) for v in value), key
            else:
                assert isinstance(value, (str, int, float, bool)), key
    attrs = rec.attrs("start")
    assert attrs["server.address"] == "::1" and attrs["server.port"] == 8443
    assert attrs["url.full"] == "http://[::1]:8443/p?a=1"
    assert attrs["http.request.body.size"] == 12


@pytest.mark.parametrize(
    "headers",
    [[("host", "h"), ("content-length", "\u00b2")], [("host", "example.com:\u00b2")]],
    ids=["content-length", "host-port"],
)
def test_superscript_digits_from_the_client_do_not_break_begin_http(
    headers: list[tuple[str, str]],
) -> None:
    rec = Recorder()
    rec.attach()
    start(headers=headers).end()  # a client-controlled header must never make this raise
    attrs = rec.attrs("start")
    assert "http.request.body.size" not in attrs
    assert attrs.get("server.port") != "\u00b2"
