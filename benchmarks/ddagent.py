"""A stand-in for the Datadog agent on 127.0.0.1, so ddtrace can be measured as a peer.

`python -m benchmarks.ddagent --port N` answers what ddtrace asks an agent:
`/info` (the trace endpoints it offers), trace payloads on `/v0.4/traces`
and `/v0.5/traces` (answered with an empty `rate_by_service`, counted by
their `X-Datadog-Trace-Count` header), and anything else (telemetry, remote
configuration) with an empty 200. `GET /count` answers the counts as JSON.
It decodes nothing: what ddtrace pays is its own encoding and sending, as
with a real agent on the same host. `standing_in()` starts one for the
harness and always stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .receiver import answer, get_counts
from .servers import CLIENT_CORE, HOST, ServerError, free_port, pinned, start, stop

START_TIMEOUT = 30.0
INFO = {"endpoints": ["/v0.4/traces", "/v0.5/traces"], "client_drop_p0s": False}


class _AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    lock = threading.Lock()
    payloads = 0
    traces = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _AgentServer

    def _body(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_PUT(self) -> None:
        self._body()
        if self.path.endswith("/traces"):
            with self.server.lock:
                self.server.payloads += 1
                self.server.traces += int(self.headers.get("X-Datadog-Trace-Count", "0"))
            answer(self, b'{"rate_by_service": {}}', "application/json")
        else:
            answer(self, b"{}", "application/json")

    do_POST = do_PUT

    def do_GET(self) -> None:
        if self.path == "/info":
            answer(self, json.dumps(INFO).encode(), "application/json")
            return
        with self.server.lock:
            counts = {"payloads": self.server.payloads, "traces": self.server.traces}
        answer(self, json.dumps(counts).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Agent:
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def counts(self) -> dict[str, int]:
        return get_counts(self.port)


@contextlib.contextmanager
def standing_in() -> Iterator[Agent]:
    """A stand-in agent process on 127.0.0.1, answering before it is yielded."""
    import sys

    port = free_port()
    command = pinned([sys.executable, "-m", "benchmarks.ddagent", "--port", str(port)], CLIENT_CORE)
    with tempfile.TemporaryFile() as log:
        proc = start(command, log)
        try:
            agent = Agent(port)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise ServerError("the stand-in agent exited")
                with contextlib.suppress(OSError):
                    agent.counts()
                    break
                if time.monotonic() > deadline:
                    raise ServerError("the stand-in agent is not answering")
                time.sleep(0.05)
            yield agent
        finally:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description="Stand in for a Datadog agent on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    with _AgentServer((HOST, parser.parse_args().port), _Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
