"""The compiled WSGI hook point against its Python twin, on random environs and app scripts.

Each example builds a WSGI environ (CGI keys present or not, raw URIs in every target
form, header keys, odd ports, a body stream that fails as a gone client or a
malformed body would) and a script for the app (read the body, start_response, a
second one with exc_info, write(), an iterable that fails or whose close() fails)
and for the server (a write that raises, an early close), then runs it through
`hooktel.wsgi.TelemetryMiddleware` (the C core) and `PythonTelemetryMiddleware`.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hooktel.wsgi
from tests.native.twins import Faults, Witness, outcome_of, witnessing

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=10)


class ParseFailure(Exception):
    """What gunicorn raises for a bad chunk size: not an OSError."""


class Stream:
    """A request body that fails after `good` reads, with `failure`."""

    def __init__(self, good: int, failure: type[BaseException] | None) -> None:
        self.good = good
        self.failure = failure
        self.buffer = io.BytesIO(b"line one\nline two\n")

    def read(self, *args: Any) -> bytes:
        return self._next(self.buffer.read, args)

    def readline(self, *args: Any) -> bytes:
        return self._next(self.buffer.readline, args)

    def readlines(self, *args: Any) -> list[bytes]:
        return self._next(self.buffer.readlines, args)  # type: ignore[no-any-return]

    def _next(self, method: Any, args: Any) -> Any:
        if self.good <= 0 and self.failure is not None:
            raise self.failure("reading the body failed")
        self.good -= 1
        return method(*args)


@st.composite
def environs(draw: st.DrawFn) -> dict[str, Any]:
    environ: dict[str, Any] = {}
    keys = {
        "REQUEST_METHOD": st.sampled_from(["GET", "POST", "HEAD", "PURGE", ""]),
        "wsgi.url_scheme": st.sampled_from(["http", "https"]),
        "RAW_URI": st.sampled_from(["/a/b?q=1", "http://x/abs", "*", "example.com:443", "", "/x"]),
        "REQUEST_URI": st.sampled_from(["/r?z", ""]),
        "SCRIPT_NAME": st.sampled_from(["", "/app"]),
        "PATH_INFO": st.sampled_from(["", "/p", "/é"]),
        "QUERY_STRING": st.sampled_from(["", "q=1", "a=b&c"]),
        "SERVER_NAME": st.sampled_from(["127.0.0.1", "", "::1"]),
        "SERVER_PORT": st.sampled_from(["8000", "", "x", "99999999999999999999"]),
        "REMOTE_ADDR": st.sampled_from(["10.0.0.1", ""]),
        "REMOTE_PORT": st.sampled_from(["5555", "", "p"]),
        "SERVER_PROTOCOL": st.sampled_from(["HTTP/1.1", "HTTP/1.0", "", "SPDY"]),
        "HTTP_HOST": st.sampled_from(["example.com:8080", "[::1]:9", "evil/x", ""]) | text,
        "HTTP_USER_AGENT": text,
        "CONTENT_LENGTH": st.sampled_from(["", "0", "12", "0012", "x"]),
        "CONTENT_TYPE": st.sampled_from(["", "text/plain"]),
        "HTTP_TRANSFER_ENCODING": st.sampled_from(["", "chunked"]),
        "HTTP_TRACEPARENT": st.sampled_from([TRACEPARENT, "00-bad", ""]),
        "HTTP_TRACESTATE": st.sampled_from(["a=1", ""]),
        "HTTP_X_CAPTURE": text,
        "HTTP_AUTHORIZATION": st.just("Bearer s3cret"),
    }
    for key, values in keys.items():
        if draw(st.booleans()):
            environ[key] = draw(values)
    if draw(st.booleans()):
        environ["wsgi.input"] = Stream(
            draw(st.integers(0, 2)),
            draw(st.sampled_from([None, ConnectionResetError, ParseFailure, ValueError])),
        )
    return environ


@dataclass(frozen=True)
class AppScript:
    read: str | None  # read, readline, readlines, iterate
    status: str | None  # None: the app never calls start_response
    exc_info: bool
    writes: int
    chunks: int
    fail_at: int | None  # the iterable raises at this chunk
    close_raises: bool
    route: bool
    handled: bool
    raise_early: bool


app_scripts = st.builds(
    AppScript,
    read=st.sampled_from([None, "read", "readline", "readlines", "iterate"]),
    status=st.sampled_from(["200 OK", "204 No Content", "500 Oops", "abc", "42", None]),
    exc_info=st.booleans(),
    writes=st.integers(0, 2),
    chunks=st.integers(0, 3),
    fail_at=st.none() | st.integers(0, 3),
    close_raises=st.booleans(),
    route=st.booleans(),
    handled=st.booleans(),
    raise_early=st.booleans(),
)


@dataclass(frozen=True)
class ServerScript:
    write_raises_at: int | None
    take: int | None  # the server stops iterating after this many chunks (a gone client)
    closes: bool


server_scripts = st.builds(
    ServerScript,
    write_raises_at=st.none() | st.integers(0, 2),
    take=st.none() | st.integers(0, 3),
    closes=st.booleans(),
)

faults = st.builds(
    Faults,
    raising=st.frozensets(st.sampled_from(["start", "inject", "end", "error"])),
    present=st.frozensets(st.sampled_from(["start", "inject", "end", "error"]), min_size=1),
    inject=st.sampled_from([None, {"x-a": "1"}, {"transfer-encoding": "x"}, 7]),
    capture_request=st.sampled_from(
        [(), ("x-capture", "authorization", "host"), ("x_capture", "content-type")]
    ),
    capture_response=st.sampled_from([(), ("content-type", "x-app")]),
)


class Closing:
    def __init__(self, chunks: list[bytes], fail_at: int | None, close_raises: bool) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.close_raises = close_raises

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise KeyError("iterating failed")
            yield chunk

    def close(self) -> None:
        if self.close_raises:
            raise RuntimeError("close failed")


def make_app(script: AppScript) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        stream = environ.get("wsgi.input")
        if script.read is not None and stream is not None:
            if script.read == "iterate":
                list(stream)
            else:
                getattr(stream, script.read)()
        if script.route:
            environ["hooktel.route"] = "/items/<id>"
        if script.raise_early:
            raise LookupError("app failed")
        if script.status is not None:
            write = start_response(script.status, [("Content-Type", "text/plain"), ("X-App", "1")])
            if script.exc_info:
                try:
                    raise ZeroDivisionError("replaced")
                except ZeroDivisionError:
                    write = start_response("500 Error", [("X-Err", "1")], sys.exc_info())
            for _ in range(script.writes):
                write(b"w")
        if script.handled:
            environ["hooktel.exception"] = ArithmeticError("handled by the framework")
        return Closing(
            [b"c" * (i + 1) for i in range(script.chunks)], script.fail_at, script.close_raises
        )

    return app


def run(
    middleware: type,
    *,
    environ: dict[str, Any],
    app_script: AppScript,
    server: ServerScript,
    fault: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> Witness:
    request_environ = dict(environ)
    if "wsgi.input" in environ:  # each run reads a fresh copy of the same body
        original = environ["wsgi.input"]
        request_environ["wsgi.input"] = Stream(original.good, original.failure)
    with witnessing(fault, monkeypatch) as witness:
        writes = 0

        def server_write(data: bytes) -> None:
            nonlocal writes
            writes += 1
            witness.server.append(("write", data))
            if server.write_raises_at == writes - 1:
                raise BrokenPipeError("client went away")

        def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            witness.server.append(("start_response", status, list(headers), exc_info is not None))
            return server_write

        raised: BaseException | None = None
        try:
            response = middleware(make_app(app_script))(request_environ, start_response)
            try:
                for index, chunk in enumerate(response):
                    if index == server.take:
                        break
                    witness.server.append(("chunk", chunk))
            finally:
                if server.closes:
                    response.close()
        except BaseException as exc:
            raised = exc
    witness.outcome = (outcome_of(raised), "hooktel.operation" in request_environ)
    return witness


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(environ=environs(), app_script=app_scripts, server=server_scripts, fault=faults)
def test_native_and_python_report_the_same(
    environ: dict[str, Any],
    app_script: AppScript,
    server: ServerScript,
    fault: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = {"environ": environ, "app_script": app_script, "server": server, "fault": fault}
    native = run(hooktel.wsgi.TelemetryMiddleware, **request, monkeypatch=monkeypatch)
    python = run(hooktel.wsgi.PythonTelemetryMiddleware, **request, monkeypatch=monkeypatch)
    assert native.normalised() == python.normalised()


def test_the_native_middleware_is_the_compiled_one() -> None:
    assert hooktel.wsgi.TelemetryMiddleware is not hooktel.wsgi.PythonTelemetryMiddleware
