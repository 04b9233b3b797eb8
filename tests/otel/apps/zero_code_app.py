"""An `http.server` app with no telemetry code at all, for `opentelemetry-instrument`.

Serves one request on a free 127.0.0.1 port (printed first), then exits, so
the launcher's span processor flushes.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", 0), Hello)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.handle_request()
    server.server_close()
