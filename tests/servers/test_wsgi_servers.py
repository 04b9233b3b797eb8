"""What every WSGI server must get from the hook point: the end at the iterable's `close()`,
the second `start_response` with `exc_info`, the peer without a port, the body errors.

Runs under gunicorn (sync), waitress and the standard library's wsgiref.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from tests.servers.contract import exchange, new_tag, send
from tests.support.apps import CLOSE_MESSAGE, ERROR_PAGE, HELLO_BODY, SLOW_CLOSE
from tests.support.recorder import TAG_HEADER
from tests.support.servers import Server, running_server


@pytest.fixture(scope="module", params=["gunicorn", "waitress", "wsgiref"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with running_server(request.param, tmp_path_factory.mktemp(request.param)) as server:
        yield server


def test_close_that_raises_is_an_error(server: Server) -> None:
    tag = new_tag()
    with contextlib.suppress(httpx.HTTPError):  # the server may drop the connection
        httpx.get(server.url("/close-raises"), headers={TAG_HEADER: tag}, timeout=5.0)
    op = server.events.operation(tag)
    assert op.sequence() == ["start", "inject", "error"]
    assert op.error["error.type"] == "RuntimeError"
    assert op.error["error.message"] == CLOSE_MESSAGE
    assert op.error["http.response.status_code"] == 200


def test_a_slow_close_is_in_the_duration(server: Server) -> None:
    response, op = send(server, "/slow-close")
    assert response.content == HELLO_BODY
    assert op.sequence() == ["start", "inject", "end"]
    assert op.end["operation.duration"] >= SLOW_CLOSE * 1e9


def test_error_page_after_exc_info_keeps_the_injected_headers(server: Server) -> None:
    """A second `start_response(..., exc_info)` replaces the head: the injection stays."""
    response, op = send(server, "/exc-info")
    assert response.status_code == 500
    assert response.content == ERROR_PAGE
    assert response.headers["x-error"] == "1"
    # gunicorn keeps the first call's headers and adds the second's: each may come twice.
    assert set(response.headers.get_list("x-hooktel-op")) == {str(op.id)}
    assert set(response.headers.get_list("x-hooktel-aux")) == {f"aux-{op.id}"}
    assert op.sequence() == ["start", "inject", "end"]
    assert op.end["http.response.status_code"] == 500
    assert op.end["http.response.body.size"] == len(ERROR_PAGE)


def test_client_address_with_or_without_port(server: Server) -> None:
    """wsgiref sets REMOTE_ADDR but not REMOTE_PORT (CGI makes it optional)."""
    _, op = send(server)
    assert op.start["client.address"] == "127.0.0.1"
    if server.name == "wsgiref":
        assert "client.port" not in op.start
    else:
        assert isinstance(op.start["client.port"], int)


def test_malformed_chunked_body_is_a_parse_error(server: Server) -> None:
    """gunicorn reads chunks as the app reads the body, and rejects a bad chunk size."""
    if server.name != "gunicorn":
        pytest.skip(f"only gunicorn decodes a chunked body as the app reads it, not {server.name}")
    tag = new_tag()
    exchange(
        server,
        f"POST /hello HTTP/1.1\r\n{TAG_HEADER}: {tag}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\nabc\r\n0\r\n\r\n",
    )
    op = server.events.operation(tag)
    assert op.sequence() == ["start", "error"]
    assert op.error["error.type"] == "ParseError"
