"""The hook-point contract under uvicorn, with the raw ASGI app in `TelemetryMiddleware`."""

from __future__ import annotations

from tests.servers.contract import ServerContract


class TestUvicornAsgi(ServerContract):
    server_name = "uvicorn"
    app_error_status = 500
