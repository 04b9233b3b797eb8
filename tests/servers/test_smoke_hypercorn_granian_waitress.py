"""Smoke test under three more servers: hypercorn and granian (ASGI), waitress (WSGI).

Start, end and error reach the instruments, with the lifecycle checked.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers.contract import new_tag, send
from tests.support.apps import BOOM_MESSAGE, HELLO_BODY
from tests.support.recorder import TAG_HEADER
from tests.support.servers import Server, running_server


@pytest.fixture(scope="module", params=["hypercorn", "granian", "waitress"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with running_server(request.param, tmp_path_factory.mktemp(request.param)) as server:
        yield server


def test_start_and_end(server: Server) -> None:
    response, op = send(server, "/hello?x=1", headers=[("x-capture-me", "yes")])
    assert response.status_code == 200
    assert response.content == HELLO_BODY
    assert response.headers["x-hooktel-op"] == str(op.id)
    assert op.sequence() == ["start", "inject", "end"]
    start, end = op.start, op.end
    assert start["http.request.method"] == "GET"
    assert start["url.full"] == f"http://127.0.0.1:{server.port}/hello?x=1"
    assert start["client.address"] == "127.0.0.1"
    assert start["http.request.header.x-capture-me"] == ["yes"]
    assert end["http.response.status_code"] == 200
    assert end["http.response.body.size"] == len(HELLO_BODY)


def test_error(server: Server) -> None:
    tag = new_tag()
    response = httpx.get(server.url("/boom"), headers={TAG_HEADER: tag}, timeout=5.0)
    assert response.status_code == 500
    op = server.events.operation(tag)
    assert op.sequence() == ["start", "error"]
    assert op.error["error.type"] == "RuntimeError"
    assert op.error["error.message"] == BOOM_MESSAGE
    assert "in boom" in op.error["exception.stacktrace"]
