"""A minimal OTLP/HTTP trace and metrics receiver on 127.0.0.1 that decodes what it gets.

`POST /v1/traces` takes an `ExportTraceServiceRequest` (protobuf, as the real
OTLP/HTTP exporter sends it) and keeps every span; `GET /spans` returns them
as JSON; `GET /count` returns how many arrived. `POST /v1/metrics` takes an
`ExportMetricsServiceRequest` and keeps every data point (`metric_points`); other
POSTs (logs: the launcher exports them too) are answered and dropped. Run it in a thread
(`OtlpReceiver`) or as its own process: `python -m tests.otel.otlp_receiver`
prints `listening on PORT`.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from benchmarks.receiver import answer, read_export


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


class OtlpReceiver(ThreadingHTTPServer):
    """The receiving server; `spans` holds everything decoded so far."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.spans: list[dict[str, Any]] = []
        self.metric_points: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    @property
    def metrics_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/metrics"


class _Handler(BaseHTTPRequestHandler):
    server: OtlpReceiver

    def do_POST(self) -> None:
        if self.path == "/v1/metrics":
            points = decode_metrics(read_export(self, ExportMetricsServiceRequest))
            with self.server.lock:
                self.server.metric_points.extend(points)
            response = ExportMetricsServiceResponse().SerializeToString()
            answer(self, response, "application/x-protobuf")
            return
        if self.path != "/v1/traces":  # logs (the launcher exports them too)
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer(self, b"", "application/x-protobuf")
            return
        spans = decode(read_export(self))
        with self.server.lock:
            self.server.spans.extend(spans)
        answer(self, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        with self.server.lock:
            data = self.server.spans if self.path == "/spans" else len(self.server.spans)
            payload = json.dumps(data).encode()
        answer(self, payload, "application/json")

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    receiver = OtlpReceiver(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"listening on {receiver.server_address[1]}", flush=True)
    receiver.serve_forever()
