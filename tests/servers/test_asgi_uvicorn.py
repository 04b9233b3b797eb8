"""The hook-point contract under uvicorn (h11; httptools), raw ASGI in `TelemetryMiddleware`."""

from __future__ import annotations

import socket
import struct

import pytest

from tests.servers.contract import ServerContract, new_tag, read_head, read_to_end
from tests.support.apps import HELLO_BODY, LAST_SEND
from tests.support.events import wait_for
from tests.support.recorder import SERVED, TAG_HEADER
from tests.support.servers import Server, running_server


class TestUvicornAsgi(ServerContract):
    server_name = "uvicorn"
    app_error_status = 500

    def test_a_pipelined_request_starts_from_the_server_context(self, server: Server) -> None:
        """uvicorn starts a pipelined request inside the last send of the one before it;
        what a hook left set in its context (`faulty` sets `LEFT_SET`) must not be there."""
        tags = [new_tag(), new_tag()]
        head = f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{TAG_HEADER}: "
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(
                f"{head}{tags[0]}\r\n\r\n{head}{tags[1]}\r\nConnection: close\r\n\r\n".encode()
            )
            assert read_to_end(sock).count(HELLO_BODY) == 2
        for tag in tags:
            assert server.events.operation(tag).sequence() == ["start", "inject", "end"]
        inherited = {
            e.attrs["tag"]: e.attrs["inherited"]
            for e in server.events.read()
            if e.event == SERVED and e.attrs["tag"] in tags
        }
        assert inherited == dict.fromkeys(tags)


class TestUvicornHttptools(TestUvicornAsgi):
    """The same contract on httptools and uvloop, what `uvicorn[standard]` runs."""

    server_name = "uvicorn-httptools"
    rejected_request_lines = ("GET http://x:8080 HTTP/1.1", "CONNECT example.com:443 HTTP/1.1")
    sees_absolute_form = False


def _reset_during_the_last_send(server: Server, tag: str) -> bytes:
    """GET `/big` reading nothing but the head, and reset once the last send has begun."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no autotuning: fills fast
        sock.settimeout(5.0)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            f"GET /big HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"{TAG_HEADER}: {tag}\r\n\r\n".encode()
        )
        head = read_head(sock)
        wait_for(lambda: f"{LAST_SEND} {tag}" in server.stderr(), "the last send to begin")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return head


@pytest.mark.parametrize("server_name", ["uvicorn", "uvicorn-httptools"])
def test_client_gone_during_the_last_send_is_an_error(
    server_name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """uvicorn drops a send to a gone client without raising: still a `ClientDisconnected`.

    `/big` sends a body larger than the socket buffers with `more_body`, so the last send
    waits for the client to drain it; the client reads the head and resets instead. The
    body size is what the server took before the client went: the last piece is not in it.
    """
    with running_server(server_name, tmp_path_factory.mktemp(server_name)) as server:
        tag = new_tag()
        head = _reset_during_the_last_send(server, tag)
        assert head.startswith(b"HTTP/1.1 200 "), head
        op = server.events.operation(tag)
        assert op.sequence() == ["start", "inject", "error"]
        assert op.error["error.type"] == "ClientDisconnected"
        assert op.error["http.response.status_code"] == 200
