"""The hook-point contract under `ThreadingHTTPServer`, after `hooktel.httpserver.instrument()`."""

from __future__ import annotations

import socket
import threading
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hooktel
import hooktel.httpserver
from tests.servers.contract import ServerContract, exchange, new_tag, read_head, read_to_end
from tests.support.apps import HELLO_BODY
from tests.support.events import wait_for
from tests.support.recorder import TAG_HEADER
from tests.support.servers import Server


class TestThreadingHTTPServer(ServerContract):
    server_name = "httpserver"
    app_error_status = None  # http.server logs the exception and closes the connection

    def test_interim_103_gets_no_injected_headers(self, server: Server) -> None:
        """Injected headers go on the final response head, not on an interim `103`."""
        tag = new_tag()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(
                f"GET /early-hints HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"{TAG_HEADER}: {tag}\r\nConnection: close\r\n\r\n".encode()
            )
            interim = read_head(sock)
            final = read_to_end(sock)
        op = server.events.operation(tag)
        head, _, body = final.partition(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 103 "), interim
        assert b"x-hooktel-op" not in interim.lower()
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert f"x-hooktel-op: {op.id}".encode() in head.lower()
        assert body == HELLO_BODY
        assert op.sequence() == ["start", "inject", "end"]
        assert op.end["http.response.status_code"] == 200
        assert op.end["http.response.body.size"] == len(HELLO_BODY)
        assert op.end["http.response.header.content-type"] == ["text/plain"]
        assert "http.response.header.link" not in op.end  # that was the 103's

    def test_malformed_request_is_a_parse_error(self, server: Server) -> None:
        """http.server answers 400 before the handler runs: one `ParseError` error, no end."""

        def parse_errors() -> list[int]:
            return [
                e.op_id
                for e in server.events.read()
                if e.instrument == "primary" and e.event == "error"
                if e.attrs["error.type"] == "ParseError"
            ]

        before = parse_errors()
        received = exchange(server, "GET /two words HTTP/1.1\r\n\r\n")
        assert received.split(b" ", 2)[1] == b"400", received
        new = wait_for(lambda: [i for i in parse_errors() if i not in before], "a ParseError")
        assert len(new) == 1
        events = [
            e for e in server.events.read() if e.instrument == "primary" and e.op_id == new[0]
        ]
        assert [e.event for e in events] == ["start", "error"]
        assert events[1].attrs["http.response.status_code"] == 400

    def test_folded_header_lines_are_reported_unfolded(self, server: Server) -> None:
        """http.server accepts obsolete line folding; no reported value carries CR or LF."""
        tag = new_tag()
        exchange(
            server,
            f"GET /hello HTTP/1.1\r\n{TAG_HEADER}: {tag}\r\nX-Capture-Me: first\r\n \t second\r\n"
            "User-Agent: agent\r\n  folded\r\n\r\n",
        )
        start = server.events.operation(tag).start
        assert start["http.request.header.x-capture-me"] == ["first second"]
        assert start["user_agent.original"] == "agent folded"
        assert not [v for v in start.values() if "\r" in str(v) or "\n" in str(v)]


def test_status_codes_are_plain_ints() -> None:
    """http.server answers its own errors with `HTTPStatus` members; hooks get an `int`."""

    class Accepted(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(HTTPStatus.ACCEPTED)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    statuses: list[object] = []

    def record(op_id: int, attrs: hooktel.Attributes) -> None:
        statuses.append(attrs["http.response.status_code"])

    was_installed = hooktel.httpserver._original is not None
    hooktel.httpserver.instrument()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accepted)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    instrument = hooktel.Instrument(
        kind="http",
        name="status",
        version="1",
        on_operation_end=record,
        on_operation_error=record,
    )
    try:
        with hooktel.attach(instrument):
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/").close()
            with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
                sock.sendall(b"GET /two words HTTP/1.1\r\n\r\n")  # a 400 from send_error()
                read_to_end(sock)
            wait_for(lambda: len(statuses) == 2, "both requests to be reported")
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        if not was_installed:
            hooktel.httpserver.uninstrument()
    assert sorted(statuses) == [202, 400]  # type: ignore[type-var]
    assert [type(status) for status in statuses] == [int, int]
