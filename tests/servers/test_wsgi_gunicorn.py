"""The hook-point contract under gunicorn (sync worker, 1 worker), WSGI `TelemetryMiddleware`."""

from __future__ import annotations

from tests.servers.contract import ServerContract, send
from tests.support.apps import HELLO_BODY
from tests.support.servers import Server


class TestGunicornWsgi(ServerContract):
    server_name = "gunicorn"
    app_error_status = 500

    def test_write_callable_bytes_are_counted(self, server: Server) -> None:
        response, op = send(server, "/write")
        assert response.content == HELLO_BODY
        assert op.end["http.response.body.size"] == len(HELLO_BODY)
