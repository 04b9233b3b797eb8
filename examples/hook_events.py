"""Demo: a real http.server handles a few requests; every hook event prints as a JSON line."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hooktel
import hooktel.httpserver

# Each request runs on its own server thread, and one request's end can come while the
# next one starts: the lock keeps every event on a line of its own.
print_lock = threading.Lock()


def printer(event: str):
    def hook(op_id: int, attrs: hooktel.Attributes) -> None:
        line = json.dumps({"event": event, "op_id": op_id, **attrs}, sort_keys=True)
        with print_lock:
            print(line, flush=True)

    return hook


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/boom"):
            raise RuntimeError("handler failed")
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    hooktel.httpserver.instrument()
    hooktel.attach(
        hooktel.Instrument(
            kind="http",
            name="json-printer",
            version="1.0",
            on_operation_start=printer("start"),
            on_operation_inject=lambda op_id: {"x-request-id": str(op_id)},
            on_operation_end=printer("end"),
            on_operation_error=printer("error"),
            capture_request_headers=["accept", "authorization"],
            capture_response_headers=["content-type"],
        )
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    requests = [
        urllib.request.Request(f"{base}/hello?name=world", headers={"traceparent": parent}),
        urllib.request.Request(f"{base}/private", headers={"Authorization": "Bearer s3cret"}),
        urllib.request.Request(f"{base}/boom"),
    ]
    for request in requests:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                request_id = response.headers["x-request-id"]
                print(f"# client got {response.status}, x-request-id={request_id}", file=sys.stderr)
        except Exception as exc:  # /boom: http.server drops the connection
            print(f"# client got {type(exc).__name__}", file=sys.stderr)
    server.shutdown()


if __name__ == "__main__":
    main()
