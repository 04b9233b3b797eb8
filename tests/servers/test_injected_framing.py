"""Headers that frame or route a response are never injected, under every real server.

The `primary` test instrument is told (`HOOKTEL_TEST_INJECT`) to inject every
framing header with a value that would break the response: a wrong
`Content-Length`, `Transfer-Encoding: chunked` over a body that is not chunked,
`Connection: close`, an `Upgrade`, ... The response must go out with the
server's one framing (one `Content-Length`, the body intact, the connection
still usable where the server keeps it alive), the harmless header beside them
must still arrive, and the drop must be logged as a hook error naming them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.contract import read_head
from tests.support.apps import HELLO_BODY
from tests.support.events import wait_for
from tests.support.recorder import INJECT_ENV
from tests.support.servers import Server, running_server

# Every value differs from what a server would write itself, so a header that
# got through is recognised by its value.
HOSTILE = {
    "Content-Length": "999",
    "transfer-encoding": "chunked",
    "Connection": "upgrade",
    "keep-alive": "timeout=987",
    "proxy-connection": "keep-alive",
    "Upgrade": "h2c",
    "TE": "trailers",
    "trailer": "x-checksum",
    "http2-settings": "AAMAAABkAAQAAP__",
    "Host": "evil.example",
    "x-harmless": "kept",
}
KEEPS_ALIVE = {"uvicorn", "httpserver", "hypercorn", "waitress"}  # gunicorn sync closes


@pytest.fixture(
    scope="module", params=["uvicorn", "gunicorn", "httpserver", "hypercorn", "waitress"]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp(f"framing-{request.param}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(INJECT_ENV, json.dumps(HOSTILE))
        with running_server(request.param, workdir) as server:
            yield server


def _response(sock: socket.socket) -> tuple[list[tuple[str, str]], bytes]:
    """One response read by its `Content-Length`: the header lines and the body."""
    head = read_head(sock).decode("latin-1")
    lines = head.split("\r\n")[1:]
    headers = [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines if line)
    ]
    lengths = [value for name, value in headers if name == "content-length"]
    assert len(lengths) == 1, f"one Content-Length expected: {head!r}"
    body = b""
    while len(body) < int(lengths[0]):
        data = sock.recv(65536)
        assert data, f"server closed mid-body: {body!r}"
        body += data
    return headers, body


def test_framing_headers_from_a_hook_never_reach_the_response(server: Server) -> None:
    offset = server.stderr_size()
    request = f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
        for _ in range(2 if server.name in KEEPS_ALIVE else 1):
            sock.sendall(request)
            headers, body = _response(sock)
            assert body == HELLO_BODY
            assert ("content-length", str(len(HELLO_BODY))) in headers
            assert ("x-harmless", "kept") in headers
            leaked = [
                (name, value)
                for name, value in headers
                if (name, value) in {(k.lower(), v) for k, v in HOSTILE.items()}
                and name != "x-harmless"
            ]
            assert not leaked, f"injected framing headers were sent: {leaked}"
            assert "transfer-encoding" not in dict(headers)

    line = wait_for(
        lambda: next(
            (
                line
                for line in server.stderr(offset).splitlines()
                if "Error in on_operation_inject (primary v1.0)" in line
            ),
            None,
        ),
        "the dropped headers to be logged",
    )
    assert "frame or route the message" in line
    for name in HOSTILE:
        if name != "x-harmless":
            assert repr(name) in line, name
