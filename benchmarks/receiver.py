"""What the traced servers send to, each in its own process: counting stand-ins.

`python -m benchmarks.receiver --port N` is an OTLP/HTTP trace receiver: it
serves `POST /v1/traces`, parses each body as an `ExportTraceServiceRequest`
(protobuf, as the real exporter sends it) and counts its spans, distinct span
ids too; nothing else is kept, so it costs the shared CPU little.

`python -m benchmarks.receiver --port N --datadog` stands in for the Datadog
agent, so ddtrace can be measured as a peer: it answers what ddtrace asks an
agent, `/info` (the trace endpoints it offers), trace payloads on
`/v0.4/traces` and `/v0.5/traces` (an empty `rate_by_service`, counted by
their `X-Datadog-Trace-Count` header), and anything else (telemetry, remote
configuration) with an empty 200. It decodes nothing: what ddtrace pays is its
own encoding and sending, as with a real agent on the same host.

Both answer `GET /count` with their counts as JSON. `receiving()` starts one
for the harness and always stops it.

The OTLP receiver is leaner than `tests/otel/otlp_receiver.py` (which turns
every span into a dict for the tests to read) on purpose: during a load run it
shares the two cores with the server and wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .servers import (
    CLIENT_CORE,
    HOST,
    ServerError,
    free_port,
    group_cpu_seconds,
    pinned,
    start,
    stop,
)

START_TIMEOUT = 30.0
AGENT_INFO = {"endpoints": ["/v0.4/traces", "/v0.5/traces"], "client_drop_p0s": False}


def read_export(
    handler: BaseHTTPRequestHandler, message: type[Any] = ExportTraceServiceRequest
) -> Any:
    """The OTLP/HTTP export request in a POST body, gzip or not (spans unless `message` says)."""
    body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
    if handler.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    request = message()
    request.ParseFromString(body)
    return request


def answer(handler: BaseHTTPRequestHandler, payload: bytes, content_type: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exports = 0
        self.spans = 0
        self.span_ids: set[bytes] = set()

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {
                "exports": self.exports,
                "spans": self.spans,
                "distinct_span_ids": len(self.span_ids),
            }


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    counts = _Counts()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the exporter's session keeps its connection
    server: _ReceiverServer

    def do_POST(self) -> None:
        request = read_export(self)
        ids = [
            span.span_id
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        counts = self.server.counts
        with counts.lock:
            counts.exports += 1
            counts.spans += len(ids)
            counts.span_ids.update(ids)
        answer(self, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        answer(self, json.dumps(self.server.counts.as_dict()).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    lock = threading.Lock()
    payloads = 0
    traces = 0


class _AgentHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _AgentServer

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
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
            answer(self, json.dumps(AGENT_INFO).encode(), "application/json")
            return
        with self.server.lock:
            counts = {"payloads": self.server.payloads, "traces": self.server.traces}
        answer(self, json.dumps(counts).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Receiver:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def counts(self) -> dict[str, int]:
        """`GET /count`: what it has counted so far."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("GET", "/count")
            data: dict[str, int] = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return data

    def spans(self) -> int:
        return self.counts()["spans"]

    def wait_for(self, spans: int, timeout: float, settle: float = 1.0) -> int:
        """Wait until `spans` arrived or the count stops moving for `settle` s; the count."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.spans()
            if now >= spans:
                return now
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > settle:
                return now
            time.sleep(0.05)
        return self.spans()

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.pid)


@contextlib.contextmanager
def receiving(datadog: bool = False) -> Iterator[Receiver]:
    """An OTLP receiver (or, `datadog`, a stand-in agent) process on 127.0.0.1, answering
    before it is yielded; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.receiver", "--port", str(port)]
    what = "the stand-in Datadog agent" if datadog else "the OTLP receiver"
    with tempfile.TemporaryFile() as log:
        proc = start(pinned(command + ["--datadog"] * datadog, CLIENT_CORE), log)
        try:
            receiver = Receiver(port, proc.pid)
            _wait_ready(proc, receiver, log, what)
            yield receiver
        finally:
            stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], receiver: Receiver, log: Any, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise ServerError(f"{what} exited: {log.read().decode(errors='replace')}")
        with contextlib.suppress(OSError):
            receiver.counts()
            return
        time.sleep(0.05)
    raise ServerError(f"{what} is not answering after {START_TIMEOUT:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description="Count what tracers send, on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--datadog", action="store_true", help="stand in for a Datadog agent")
    args = parser.parse_args()
    server = _AgentServer if args.datadog else _ReceiverServer
    handler = _AgentHandler if args.datadog else _Handler
    with server((HOST, args.port), handler) as running:
        running.serve_forever()


if __name__ == "__main__":
    main()
