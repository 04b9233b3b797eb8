"""A minimal OTLP/HTTP trace receiver on 127.0.0.1 that decodes what it gets, and can misbehave.

`POST /v1/traces` takes an `ExportTraceServiceRequest` (protobuf, as the real
OTLP/HTTP exporter sends it, gzip or not) and keeps every span; `POST
/v1/metrics` takes an `ExportMetricsServiceRequest` and keeps every data point
(`metric_points`); other POSTs (logs) are answered and dropped; `GET /spans`
returns them as JSON; `GET /count` returns how many arrived; `GET /posts`
lists every POST (status answered, spans in it, when, and its headers).

Fault modes, for the export tests (`PUT /fault` with a JSON `Fault`, or
`receiver.fault = Fault(...)`): answer POSTs with another status (500, 429
with a `Retry-After`), after a delay (a slow receiver), for the next `times`
POSTs only or for all. Spans count as received only from POSTs answered 2xx.
A receiver that is down is simply a port nothing listens on.

Run it in a thread (`OtlpReceiver`) or as its own process
(`receiver_process()`, or `python -m tests.otel.otlp_receiver [PORT]`, which
prints `listening on PORT`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def decode(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """The spans of one export request, flattened to plain dicts."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "name": span.name,
                        "kind": span.kind,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "events": [e.name for e in span.events],
                        "scope": scope_spans.scope.name,
                        "resource": resource,
                    }
                )
    return spans


def decode_metrics(request: ExportMetricsServiceRequest) -> list[dict[str, Any]]:
    """The data points of one metrics export request (histograms and sums), as plain dicts."""
    points = []
    for resource_metrics in request.resource_metrics:
        resource = {a.key: _value(a.value) for a in resource_metrics.resource.attributes}
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for point in data.data_points:
                    found = {
                        "name": metric.name,
                        "kind": kind,
                        "temporality": data.aggregation_temporality,
                        "resource": resource,
                        "scope": scope_metrics.scope.name,
                        "attributes": {a.key: _value(a.value) for a in point.attributes},
                        "start": point.start_time_unix_nano,
                        "time": point.time_unix_nano,
                    }
                    if kind == "histogram":
                        found["count"], found["sum"] = point.count, point.sum
                        found["bucket_counts"] = list(point.bucket_counts)
                    else:
                        found["value"] = point.as_double or point.as_int
                    points.append(found)
    return points


@dataclass
class Fault:
    """How POSTs are answered: `status` (with `retry_after`), after `delay` seconds.

    `times`: only the next that many POSTs; None: every POST until changed.
    `rejected`: a 200 that reports that many spans rejected (an OTLP partial success).
    """

    status: int = 200
    delay: float = 0.0
    retry_after: str | None = None
    times: int | None = None
    rejected: int = 0


class OtlpReceiver(ThreadingHTTPServer):
    """The receiving server; `spans` holds everything decoded so far, `posts` every POST.

    POSTs are parsed as they come (protobuf's C parser) and flattened only when
    read: under load the receiver keeps up with the exporter.
    """

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.received: list[ExportTraceServiceRequest] = []
        self.count = 0
        self.posts: list[dict[str, Any]] = []
        self.metric_points: list[dict[str, Any]] = []
        self.fault = Fault()
        self.lock = threading.Lock()

    @property
    def spans(self) -> list[dict[str, Any]]:
        with self.lock:
            received = list(self.received)
        return [span for request in received for span in decode(request)]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def next_fault(self) -> Fault:
        """The fault this POST gets (one use of a limited fault)."""
        with self.lock:
            fault = self.fault
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.fault = Fault()
            return fault


@contextlib.contextmanager
def receiver_thread() -> Iterator[OtlpReceiver]:
    """An `OtlpReceiver` on a free 127.0.0.1 port, served by a thread in this process."""
    receiver = OtlpReceiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real collectors
    server: OtlpReceiver

    def _body(self) -> bytes:
        """The request body, gunzipped when the exporter compressed it."""
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        return gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body

    def _reply(
        self, payload: bytes, content_type: str, status: int = 200, retry_after: str | None = None
    ) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        if self.path == "/v1/metrics":
            points = decode_metrics(ExportMetricsServiceRequest.FromString(self._body()))
            with self.server.lock:
                self.server.metric_points.extend(points)
            response = ExportMetricsServiceResponse().SerializeToString()
            self._reply(response, "application/x-protobuf")
            return
        body = self._body()
        if self.path != "/v1/traces":  # logs (the launcher exports them too)
            self._reply(b"", "application/x-protobuf")
            return
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        fault = self.server.next_fault()
        if fault.delay:
            time.sleep(fault.delay)
        post = {
            "status": fault.status,
            "spans": spans,
            "time": time.monotonic(),
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        with self.server.lock:
            self.server.posts.append(post)
            if 200 <= fault.status < 300:
                self.server.received.append(request)
                self.server.count += spans
        if fault.status != 200:
            self._reply(b"", "application/x-protobuf", fault.status, fault.retry_after)
            return
        response = ExportTraceServiceResponse()
        if fault.rejected:
            response.partial_success.rejected_spans = fault.rejected
            response.partial_success.error_message = "too old"
        self._reply(response.SerializeToString(), "application/x-protobuf")

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.fault = Fault(**json.loads(body))
        self._reply(b"{}", "application/json")

    def do_GET(self) -> None:
        data: Any
        if self.path == "/spans":
            data = self.server.spans
        else:
            with self.server.lock:
                data = list(self.server.posts) if self.path == "/posts" else self.server.count
        self._reply(json.dumps(data).encode(), "application/json")

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class ReceiverProcess:
    """A receiver running as its own process, read and steered over HTTP."""

    process: subprocess.Popen[str]
    port: int
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def _get(self, path: str) -> Any:
        return self.http.get(f"http://127.0.0.1:{self.port}{path}").json()

    def spans(self) -> list[dict[str, Any]]:
        return list(self._get("/spans"))

    def count(self) -> int:
        return int(self._get("/count"))

    def posts(self) -> list[dict[str, Any]]:
        return list(self._get("/posts"))

    def set_fault(self, fault: Fault) -> None:
        response = self.http.put(f"http://127.0.0.1:{self.port}/fault", json=asdict(fault))
        response.raise_for_status()


@contextlib.contextmanager
def receiver_process() -> Iterator[ReceiverProcess]:
    """A receiver process on a free 127.0.0.1 port, stopped on exit."""
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.otel.otlp_receiver"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening on "), first
        receiver = ReceiverProcess(process, int(first.split()[-1]))
        yield receiver
        receiver.http.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    receiver = OtlpReceiver(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"listening on {receiver.server_address[1]}", flush=True)
    receiver.serve_forever()
