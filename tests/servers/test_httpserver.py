"""The hook-point contract under `ThreadingHTTPServer`, after `hooktel.httpserver.instrument()`."""

from __future__ import annotations

from tests.servers.contract import ServerContract


class TestThreadingHTTPServer(ServerContract):
    server_name = "httpserver"
    app_error_status = None  # http.server logs the exception and closes the connection
