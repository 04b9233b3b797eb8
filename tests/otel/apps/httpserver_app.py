"""A `ThreadingHTTPServer` with a plain handler: `python -m tests.otel.apps.httpserver_app`.

It has no routes in the framework sense, so its spans have no `http.route`.
The handler speaks HTTP/1.1 keep-alive, so one connection (one thread) can
carry several requests.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from tests.otel.apps import harness


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def _answer(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith(harness.CONTROL_PREFIX):
            self._answer(*harness.control(self.command, path, body))
        elif path.startswith(("/items/", "/api/items/")):
            self._answer(
                200, json.dumps(harness.child_span("thread")).encode(), harness.RESPONSE_HEADERS
            )
        elif path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]), b"status")
        elif path == "/boom":
            harness.boom()
        elif path == "/stream":
            self._stream(dict(parse_qsl(query)))
        elif path == "/health":
            self._answer(200, json.dumps(harness.child_span("health")).encode())
        elif path == "/anything":
            self._answer(200, self.command.encode())
        else:
            self._answer(404, b"not found")

    do_POST = do_GET
    do_PURGE = do_GET

    def _stream(self, query: dict[str, str]) -> None:
        """Chunks as they come, then the end of the body is the end of the connection."""
        n, interval, tail = harness.stream_params(query)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for i in range(n):
            if i:
                time.sleep(interval)
            self.wfile.write(harness.chunk(i))
            self.wfile.flush()
        time.sleep(tail)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
