"""The hook-point contract (docs/hooks.md) as tests that any real server must pass.

`ServerContract` holds the tests; each server's test file subclasses it and
names its server (a key of `tests.support.servers.SERVERS`). The server runs
once per test class, in a subprocess, with the instruments of
`tests.support.recorder` attached: `primary`, `faulty`, `auxiliary`, in that
order. Every request carries a unique `x-test-id`, which the instruments
capture, so a test finds its own operation among everything recorded.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import httpx
import pytest

from tests.support.apps import BOOM_MESSAGE, CHUNK, HELLO_BODY
from tests.support.events import Operation, wait_for
from tests.support.recorder import HOOK_ERROR_MESSAGE, RAISE_HEADER, TAG_HEADER
from tests.support.servers import Server, running_server

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
SECRETS = {
    "authorization": "Bearer secret-authorization",
    "proxy-authorization": "Basic secret-proxy",
    "cookie": "session=secret-cookie",
    "x-api-key": "secret-api-key",
    "x-csrf-token": "secret-csrf",
}

Headers = Sequence[tuple[str, str]]


def new_tag() -> str:
    return uuid.uuid4().hex


def send(
    server: Server,
    target: str = "/hello",
    *,
    method: str = "GET",
    headers: Headers = (),
    content: bytes | None = None,
) -> tuple[httpx.Response, Operation]:
    """Send one tagged request with httpx; return the response and its finished operation."""
    tag = new_tag()
    with httpx.Client(timeout=5.0) as client:
        response = client.request(
            method,
            server.url(target),
            headers=[(TAG_HEADER, tag), *headers],
            content=content,
        )
    return response, server.events.operation(tag)


def read_until_first_chunk(sock: socket.socket) -> bytes:
    """Read the response head and at least one chunk of its body."""
    received = b""
    while CHUNK not in received.partition(b"\r\n\r\n")[2]:
        data = sock.recv(65536)
        assert data, f"server closed before the first chunk: {received!r}"
        received += data
    return received


def read_head(sock: socket.socket) -> bytes:
    """Read up to the end of one response head (the interim `100 Continue` included)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(1)  # byte by byte: what follows the head is not ours to take
        assert data, f"server closed mid-head: {received!r}"
        received += data
    return received


def read_to_end(sock: socket.socket) -> bytes:
    received = b""
    while data := sock.recv(65536):
        received += data
    return received


def exchange(server: Server, head: str) -> bytes:
    """Send a request head (`Host` and `Connection: close` added) on a raw socket; read all."""
    request_line, _, rest = head.partition("\r\n")
    extra = f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
        sock.sendall(f"{request_line}\r\n{extra}{rest}".encode())
        return read_to_end(sock)


class ServerContract:
    """The tests; a subclass sets `server_name` and how the server answers an app error."""

    server_name: ClassVar[str]
    # The status the server answers when the app raises; None: it drops the connection.
    app_error_status: ClassVar[int | None] = 500
    # Request lines the server answers itself (400, 501), before any app or hook runs.
    rejected_request_lines: ClassVar[tuple[str, ...]] = ()
    # Whether the app sees an absolute-form target's authority (uvicorn keeps the path only).
    sees_absolute_form: ClassVar[bool] = True

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        workdir = tmp_path_factory.mktemp(cls.server_name)
        with running_server(cls.server_name, workdir) as server:
            yield server

    # ------------------------------------------------------------ attributes

    def test_start_and_end_attributes(self, server: Server) -> None:
        tag, body = new_tag(), b"x" * 123
        target = "/hello/a%20b?name=world&x=1"
        before = time.time_ns()
        with (
            httpx.Client(timeout=5.0) as client,
            client.stream(
                "POST",
                server.url(target),
                content=body,
                headers={TAG_HEADER: tag, "user-agent": "hooktel-tests/1.0"},
            ) as response,
        ):
            client_addr = response.extensions["network_stream"].get_extra_info("client_addr")
            response.read()
        after = time.time_ns()
        op = server.events.operation(tag)

        assert response.status_code == 200
        assert response.content == HELLO_BODY
        start = op.start
        assert start["operation.id"] == op.id
        assert before <= start["operation.timestamp"] <= after
        assert start["http.request.method"] == "POST"
        assert "http.request.method_original" not in start
        assert start["url.scheme"] == "http"
        assert start["url.path"] == "/hello/a%20b"
        assert start["url.query"] == "name=world&x=1"
        assert start["url.full"] == f"http://127.0.0.1:{server.port}{target}"
        assert start["server.address"] == "127.0.0.1"
        assert start["server.port"] == server.port
        assert start["client.address"] == "127.0.0.1"
        assert start["client.port"] == client_addr[1]
        assert start["network.protocol.version"] == "1.1"
        assert start["user_agent.original"] == "hooktel-tests/1.0"
        assert start["http.request.body.size"] == 123
        assert not [key for key in start if key.startswith("trace.parent.")]

        end = op.end
        assert op.sequence() == ["start", "inject", "end"]
        assert end["operation.id"] == op.id
        assert 0 < end["operation.duration"] < 10**10
        assert end["http.response.status_code"] == 200
        assert end["http.response.body.size"] == len(HELLO_BODY)

    def test_status_sent_and_missing_attributes_left_out(self, server: Server) -> None:
        response, op = send(server, "/hello?status=201")
        assert response.status_code == 201
        assert op.end["http.response.status_code"] == 201
        assert "url.query" in op.start
        response, op = send(server, "/hello")
        assert "url.query" not in op.start  # absent, never None or ""
        assert "http.request.body.size" not in op.start  # no Content-Length on this GET

    @pytest.mark.parametrize(
        ("host", "address", "port", "authority"),
        [
            ("[::1]:8080", "::1", 8080, "[::1]:8080"),
            ("[::1]", "::1", 80, "[::1]"),
            ("example.test:8443", "example.test", 8443, "example.test:8443"),
            ("example.test", "example.test", 80, "example.test"),
            # A Host that does not parse: the listening socket stands in, for the URL too.
            ("[::1", None, None, None),
            ("example.test:http", None, None, None),
        ],
        ids=["ipv6-port", "ipv6", "name-port", "name", "bad-ipv6", "bad-port"],
    )
    def test_server_address_from_host(
        self,
        server: Server,
        host: str,
        address: str | None,
        port: int | None,
        authority: str | None,
    ) -> None:
        if address is None:
            address, port = "127.0.0.1", server.port
            authority = f"127.0.0.1:{server.port}"
        response, op = send(server, "/hello?a=1", headers=[("host", host)])
        assert response.status_code == 200
        assert (op.start["server.address"], op.start["server.port"]) == (address, port)
        assert op.start["url.full"] == f"http://{authority}/hello?a=1"

    def test_head_response_counts_no_body(self, server: Server) -> None:
        tag = new_tag()
        received = exchange(server, f"HEAD /hello HTTP/1.1\r\n{TAG_HEADER}: {tag}\r\n\r\n")
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"200", head
        assert body == b""  # nothing after the head on the wire...
        assert server.events.operation(tag).end["http.response.body.size"] == 0  # ...nor here

    def test_expect_100_continue(self, server: Server) -> None:
        tag = new_tag()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(
                f"POST /hello HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{TAG_HEADER}: {tag}\r\n"
                "Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n".encode()
            )
            interim = read_head(sock)
            assert interim.startswith(b"HTTP/1.1 100 "), interim
            sock.sendall(b"hello")
            final = read_to_end(sock)
        head, _, body = final.partition(b"\r\n\r\n")
        op = server.events.operation(tag)
        assert head.split(b" ", 2)[1] == b"200", head
        assert f"x-hooktel-op: {op.id}".encode() in head.lower()  # on the final response
        assert body == HELLO_BODY
        assert op.start["http.request.body.size"] == 5
        assert op.end["http.response.status_code"] == 200
        assert op.end["http.response.body.size"] == len(HELLO_BODY)

    def test_unknown_method_is_other(self, server: Server) -> None:
        response, op = send(server, method="PURGE")
        assert response.status_code == 200
        assert op.start["http.request.method"] == "_OTHER"
        assert op.start["http.request.method_original"] == "PURGE"
        assert op.end["http.response.status_code"] == 200

    def test_keep_alive_requests_are_separate_operations(self, server: Server) -> None:
        tags = [new_tag(), new_tag()]
        with httpx.Client(timeout=5.0) as client:
            responses = [
                client.get(server.url(f"/hello?n={n}"), headers={TAG_HEADER: tag})
                for n, tag in enumerate(tags)
            ]
        first, second = (server.events.operation(tag) for tag in tags)
        assert [r.headers["x-hooktel-op"] for r in responses] == [str(first.id), str(second.id)]
        assert first.id != second.id
        for n, op in enumerate((first, second)):
            assert op.sequence() == ["start", "inject", "end"]
            assert op.start["url.query"] == f"n={n}"
            assert op.end["http.response.body.size"] == len(HELLO_BODY)

    # ------------------------------------------------------------ trace context

    @pytest.mark.parametrize(
        ("tracestate", "expected_state"),
        [
            ([], None),
            (["congo=t61rcWkgMzE"], "congo=t61rcWkgMzE"),
            (
                ["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"],
                "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            ),
        ],
        ids=["no-tracestate", "one-tracestate", "two-tracestate-lines"],
    )
    def test_valid_traceparent_gives_parent(
        self, server: Server, tracestate: list[str], expected_state: str | None
    ) -> None:
        headers = [("traceparent", TRACEPARENT), *(("tracestate", s) for s in tracestate)]
        _, op = send(server, headers=headers)
        parent = {k: v for k, v in op.start.items() if k.startswith("trace.parent.")}
        expected: dict[str, Any] = {
            "trace.parent.trace_id": TRACE_ID,
            "trace.parent.span_id": SPAN_ID,
            "trace.parent.trace_flags": 1,
        }
        if expected_state is not None:
            expected["trace.parent.trace_state"] = expected_state
        assert parent == expected

    @pytest.mark.parametrize(
        "traceparents",
        [
            [TRACEPARENT.upper()],
            [f"00-{'0' * 32}-{SPAN_ID}-01"],
            [f"00-{TRACE_ID}-{'0' * 16}-01"],
            [f"ff-{TRACE_ID}-{SPAN_ID}-01"],
            [f"00-{TRACE_ID}-{SPAN_ID}-1"],
            [TRACEPARENT + "-extra"],
            [TRACEPARENT, TRACEPARENT],
        ],
        ids=["uppercase", "zero-trace", "zero-span", "version-ff", "short", "v00-extra", "twice"],
    )
    def test_invalid_traceparent_gives_no_parent(
        self, server: Server, traceparents: list[str]
    ) -> None:
        headers = [*(("traceparent", t) for t in traceparents), ("tracestate", "congo=1")]
        response, op = send(server, headers=headers)
        assert response.status_code == 200
        assert not [key for key in op.start if key.startswith("trace.parent.")]

    # ------------------------------------------------------------ inject

    def test_injected_headers_reach_the_client(self, server: Server) -> None:
        response, op = send(server)
        assert response.headers["x-hooktel-op"] == str(op.id)
        assert response.headers.get_list("x-injected-by") == ["primary"]  # first one wins
        assert response.headers["x-hooktel-aux"] == f"aux-{op.id}"
        for instrument in ("primary", "auxiliary"):
            assert op.sequence(instrument) == ["start", "inject", "end"]

    # ------------------------------------------------------------ app errors

    def test_app_exception_is_one_error(self, server: Server) -> None:
        tag = new_tag()
        with httpx.Client(timeout=5.0) as client:
            if self.app_error_status is None:
                with pytest.raises(httpx.RemoteProtocolError):
                    client.get(server.url("/boom"), headers={TAG_HEADER: tag})
            else:
                response = client.get(server.url("/boom"), headers={TAG_HEADER: tag})
                assert response.status_code == self.app_error_status
        op = server.events.operation(tag)
        for instrument in ("primary", "auxiliary"):
            assert op.sequence(instrument)[-1] == "error"
            assert "end" not in op.sequence(instrument)
        error = op.error
        assert error["operation.id"] == op.id
        assert error["operation.duration"] > 0
        assert error["error.type"] == "RuntimeError"
        assert error["error.message"] == BOOM_MESSAGE
        assert f"RuntimeError: {BOOM_MESSAGE}" in error["exception.stacktrace"]
        assert "in boom" in error["exception.stacktrace"]

    # ------------------------------------------------------------ header capture

    def test_captured_and_redacted_headers(self, server: Server) -> None:
        headers = [("x-capture-me", "captured value"), ("x-not-captured", "no"), *SECRETS.items()]
        response, op = send(server, headers=headers)
        assert response.status_code == 200
        start, end = op.start, op.end
        assert start["http.request.header.x-capture-me"] == ["captured value"]
        for name in SECRETS:
            assert start[f"http.request.header.{name}"] == ["REDACTED"], name
        assert "http.request.header.x-not-captured" not in start
        assert end["http.response.header.x-app-header"] == ["app-value"]
        assert end["http.response.header.content-type"] == ["text/plain"]
        assert end["http.response.header.set-cookie"] == ["REDACTED"]
        assert "http.response.header.content-length" not in end
        recorded = server.events.path.read_text()
        for secret in [*SECRETS.values(), "secret-set-cookie"]:
            assert secret not in recorded

    def test_headers_sent_empty_are_reported_empty(self, server: Server) -> None:
        _, op = send(server, headers=[("x-capture-me", ""), ("user-agent", "")])
        assert op.start["http.request.header.x-capture-me"] == [""]
        assert op.start["user_agent.original"] == ""

    # ------------------------------------------------------------ several instruments

    def test_instruments_run_in_registration_order(self, server: Server) -> None:
        _, op = send(server)
        assert [(e.instrument, e.event) for e in op.events] == [
            ("primary", "start"),
            ("auxiliary", "start"),
            ("primary", "inject"),
            ("auxiliary", "inject"),
            ("primary", "end"),
            ("auxiliary", "end"),
        ]

    def test_raising_hook_logs_one_line_and_request_succeeds(self, server: Server) -> None:
        offset = server.stderr_size()
        response, op = send(server, headers=[(RAISE_HEADER, "1")])
        assert response.status_code == 200
        assert response.content == HELLO_BODY
        for instrument in ("primary", "auxiliary"):  # the others still ran
            assert op.sequence(instrument) == ["start", "inject", "end"]
        logged = [
            line for line in server.stderr(offset).splitlines() if line.startswith("[hooktel]")
        ]
        expected = f"Error in on_operation_start (faulty v9.9): RuntimeError: {HOOK_ERROR_MESSAGE}"
        assert logged == [f"[hooktel] {expected}"]

    # ------------------------------------------------------------ client gone

    @pytest.mark.parametrize(
        "target",
        ["/stream", "/stream?gone=return", "/stream?gone=raise"],
        ids=["app-carries-on", "app-returns", "app-raises"],
    )
    def test_client_disconnect_mid_response(self, server: Server, target: str) -> None:
        """Closing the socket after the first chunk is one `ClientDisconnected` error.

        Whatever the app does next (carry on, return, raise), nothing follows it.
        """
        tag = new_tag()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"{TAG_HEADER}: {tag}\r\n\r\n".encode()
            )
            head = read_until_first_chunk(sock)
        assert head.split(b" ", 2)[1] == b"200", head
        op = server.events.operation(tag)
        for instrument in ("primary", "auxiliary"):
            assert "end" not in op.sequence(instrument)
        error = op.error
        assert error["error.type"] == "ClientDisconnected"
        assert error["http.response.status_code"] == 200

    # ------------------------------------------------------------ hostile input

    @pytest.mark.parametrize(
        ("request_line", "url_path", "url_full"),
        [
            ("GET http://x/abs?q=1 HTTP/1.1", "/abs", "http://x/abs?q=1"),
            ("GET http://x:8080 HTTP/1.1", "/", "http://x:8080/"),
            ("GET https://user@evil/a HTTP/1.1", "/a", "https://{socket}/a"),
            ("OPTIONS * HTTP/1.1", "*", "http://{host}"),
            ("CONNECT example.com:443 HTTP/1.1", "", "http://example.com:443"),
        ],
        ids=["absolute", "absolute-no-path", "absolute-bad-authority", "asterisk", "connect"],
    )
    def test_url_full_follows_the_request_target_form(
        self, server: Server, request_line: str, url_path: str, url_full: str
    ) -> None:
        """RFC 9112 3.3: the target URI rebuilt by the form the request-target came in."""
        if request_line in self.rejected_request_lines:
            pytest.skip(f"{self.server_name} answers {request_line!r} itself")
        target = request_line.split(" ")[1]
        host = f"127.0.0.1:{server.port}"
        if "://" in target and not self.sees_absolute_form:
            # The server gives the app the path alone: the Host header is the authority.
            url_full = f"http://{host}{url_path}" + ("?q=1" if "?q=1" in target else "")
        tag = new_tag()
        exchange(server, f"{request_line}\r\n{TAG_HEADER}: {tag}\r\n\r\n")
        start = server.events.operation(tag).start
        assert start["url.path"] == url_path
        assert start["url.full"] == url_full.format(host=host, socket=host)

    @pytest.mark.parametrize(
        "host",
        [
            "evil/x?y#z",
            "a" * 5000,
            "evil host",
            "user@evil",
            "[::1",
            "[::1]x",
            "h:0",
            "h:99999",
            "h:8o",
        ],
        ids=[
            "path",
            "long",
            "space",
            "userinfo",
            "open-bracket",
            "after-bracket",
            "port-0",
            "port-big",
            "port-text",
        ],
    )
    def test_invalid_host_falls_back_to_the_socket(self, server: Server, host: str) -> None:
        tag = new_tag()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(
                f"GET /hello?x=1 HTTP/1.1\r\nHost: {host}\r\n{TAG_HEADER}: {tag}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            read_to_end(sock)
        start = server.events.operation(tag).start
        assert (start["server.address"], start["server.port"]) == ("127.0.0.1", server.port)
        assert start["url.full"] == f"http://127.0.0.1:{server.port}/hello?x=1"

    def test_secrets_are_redacted_by_what_is_read_not_by_the_name_asked_for(
        self, server: Server
    ) -> None:
        """`proxy_authorization` and `x-api_key` read what `Proxy-Authorization` and
        `X-Api-Key` hold on a WSGI server (one CGI key): they are redacted everywhere."""
        secrets = [("Proxy-Authorization", "Basic s3cret-proxy"), ("X-Api-Key", "s3cret-key")]
        response, op = send(server, headers=secrets)
        assert response.status_code == 200
        captured = {k: v for k, v in op.start.items() if k.startswith("http.request.header.")}
        assert "s3cret" not in repr(captured)
        assert captured["http.request.header.proxy-authorization"] == ["REDACTED"]

    # ------------------------------------------------------------ the error table

    def test_client_gone_mid_request_body_is_client_disconnected(self, server: Server) -> None:
        """The client resets the connection while the app reads its body."""
        tag = new_tag()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5.0)
        sock.sendall(
            f"POST /hello HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{TAG_HEADER}: {tag}\r\n"
            "Content-Length: 100000\r\n\r\npartial body".encode()
        )
        wait_for(lambda: server.events.started(tag), "the request to start")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # with SO_LINGER 0: a reset, as a client that goes away does
        op = server.events.operation(tag)
        assert op.sequence() == ["start", "error"]
        assert op.error["error.type"] == "ClientDisconnected"
