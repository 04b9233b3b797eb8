"""End to end: spans leave through the real OTLP/HTTP exporter and are decoded on arrival.

A Starlette app under uvicorn (in a thread; Starlette, so the test also runs in
the SDK-floor run, where the pinned FastAPI cannot be installed) is traced with `BatchSpanProcessor`
and `OTLPSpanExporter`; the receiver is a separate server on 127.0.0.1 that
decodes the protobuf with `opentelemetry-proto`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hooktel.otel import HttpInstrumentation
from tests.otel.inprocess import FAST_PATH_ENV, uvicorn_thread, wait_until
from tests.otel.otlp_receiver import OtlpReceiver, receiver_thread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
ERROR_STATUS = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


async def order(request: Request) -> JSONResponse:
    return JSONResponse({"order_id": int(request.path_params["order_id"])})


async def fail(request: Request) -> JSONResponse:
    raise RuntimeError("payment backend down")


api = Starlette(routes=[Route("/orders/{order_id}", order), Route("/fail", fail)])


@pytest.fixture(params=["1", "0"], ids=["fast-path", "api-path"])
def receiver(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[OtlpReceiver, TracerProvider, int]]:
    monkeypatch.setenv(FAST_PATH_ENV, request.param)
    with receiver_thread() as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "orders"}))
        exporter = OTLPSpanExporter(endpoint=receiver.endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        instrumentation = HttpInstrumentation()
        instrumentation.uninstrument()  # a singleton: whatever instrumented it before lets go
        # The receiver is an http.server in this process: leave its own requests untraced.
        instrumentation.instrument(tracer_provider=provider, excluded_urls="/v1/traces")
        try:
            with uvicorn_thread(api) as port:
                yield receiver, provider, port
        finally:
            instrumentation.uninstrument()
            provider.shutdown()
            assert os.environ[FAST_PATH_ENV] == request.param


def test_spans_arrive_decoded_with_names_ids_and_attributes(
    receiver: tuple[OtlpReceiver, TracerProvider, int],
) -> None:
    otlp, provider, port = receiver
    base = f"http://127.0.0.1:{port}"
    ok = httpx.get(f"{base}/orders/7?x=1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert ok.status_code == 200
    assert httpx.get(f"{base}/fail").status_code == 500
    assert provider.force_flush(10_000)
    spans = wait_until(lambda: len(otlp.spans) >= 2 and otlp.spans, "two exported spans")
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"GET /orders/{order_id}", "GET /fail"}

    good = by_name["GET /orders/{order_id}"]
    assert good["kind"] == SERVER_KIND
    assert good["trace_id"] == TRACE_ID
    assert good["parent_span_id"] == PARENT_ID
    assert ok.headers["traceparent"] == f"00-{TRACE_ID}-{good['span_id']}-01"
    assert good["scope"] == "hooktel.otel"
    assert good["resource"]["service.name"] == "orders"
    assert good["end"] > good["start"] > 0
    attributes = good["attributes"]
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/orders/{order_id}"
    assert attributes["url.path"] == "/orders/7"
    assert attributes["url.query"] == "x=1"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.port"] == port
    assert not any(key.startswith(("operation.", "trace.parent.")) for key in attributes)

    bad = by_name["GET /fail"]
    assert bad["parent_span_id"] == ""  # no traceparent: a new trace
    assert bad["status"] == ERROR_STATUS
    assert bad["attributes"]["error.type"] == "RuntimeError"
    assert bad["events"] == ["exception"]
