"""The fast span path behaves as the SDK's own path, observed from outside.

The same requests run through a real uvicorn server twice, once with
`HOOKTEL_OTEL_FAST_PATH=1` (`RequestSpan`) and once with `=0` (the ordinary
API path, i.e. the SDK's `Tracer.start_span`). A recording sampler, a
recording span processor and the exported spans must tell the same story:
the sampler's arguments, DROP and RECORD_ONLY decisions, span limits, the
resource, `on_start`/`on_end` calls, and everything the handler does to the
current span through the Span API.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hooktel.otel import HttpInstrumentation
from tests.otel.inprocess import FAST_PATH_ENV, uvicorn_thread, wait_until

PATHS = ("/api", "/drop", "/record-only", "/limits", "/with-block")
LINKED = trace.SpanContext(0xABC, 0xDEF, is_remote=True)


class RecordingSampler(Sampler):
    """Samples by path, and remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def should_sample(  # noqa: PLR0917 - the Sampler API
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        path = dict(attributes or {}).get("url.path")
        if path in PATHS and kind is SpanKind.SERVER:
            self.calls.append(
                (path, parent.span_id, trace_id == parent.trace_id, name, kind, _stable(attributes))
            )
        decision = {"/drop": Decision.DROP, "/record-only": Decision.RECORD_ONLY}.get(
            path, Decision.RECORD_AND_SAMPLE
        )
        return SamplingResult(decision, attributes if decision != Decision.DROP else None)

    def get_description(self) -> str:
        return "RecordingSampler"


class RecordingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.calls.append(
            ("start", span.name, span.kind, span.is_recording(), isinstance(span, ReadableSpan))
        )
        span.set_attribute("processor.saw_start", True)

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(("end", span.name, type(span) is ReadableSpan, span.end_time is not None))


async def api(request: Request) -> PlainTextResponse:
    span = trace.get_current_span()
    assert span.is_recording() or request.url.path == "/drop"
    span.set_attribute("user.key", "v")
    span.set_attributes({"user.list": ["a", "b"], "user.bad": object()})  # SDK: None
    span.add_event("checkpoint", {"step": 1})
    span.add_link(LINKED, {"why": "batch"})
    span.record_exception(ValueError("handled"), {"extra": "x"})
    span.set_status(Status(StatusCode.OK, "fine"))
    span.set_status(StatusCode.ERROR)  # OK is final
    with request.app.state.tracer.start_as_current_span("child") as child:
        assert child.parent.span_id == span.get_span_context().span_id
    return PlainTextResponse("ok")


async def limits(request: Request) -> PlainTextResponse:
    trace.get_current_span().set_attributes({f"user.{i}": "x" * 40 for i in range(8)})
    return PlainTextResponse("ok")


async def with_block(request: Request) -> PlainTextResponse:
    try:
        with trace.use_span(trace.get_current_span(), end_on_exit=False):
            raise KeyError("inside")
    except KeyError:
        pass
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/api", api),
        Route("/drop", api),
        Route("/record-only", api),
        Route("/limits", limits),
        Route("/with-block", with_block),
    ]
)


def _stable(attributes: Any) -> dict[str, Any]:
    """Attributes without the ones that differ from one server run to the next."""
    return {
        k: v for k, v in dict(attributes or {}).items() if k not in ("client.port", "server.port")
    }


def _normal(span: ReadableSpan) -> dict[str, Any]:
    """What must match between the two paths; ids, ports and times left out."""
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent is not None,
        "status": (span.status.status_code, span.status.description),
        "attributes": _stable(span.attributes),
        "dropped_attributes": span.dropped_attributes,
        "events": [
            (e.name, {k: v for k, v in e.attributes.items() if k != "exception.stacktrace"})
            for e in span.events
        ],
        "links": [(link.context.span_id, dict(link.attributes or {})) for link in span.links],
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "sampled": span.context.trace_flags.sampled,
        "timed": span.start_time is not None and span.end_time >= span.start_time,
    }


def run_requests(fast_path: str) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    os.environ[FAST_PATH_ENV] = fast_path
    sampler, processor, exporter = RecordingSampler(), RecordingProcessor(), InMemorySpanExporter()
    provider = TracerProvider(
        sampler=sampler,
        resource=Resource.create({"service.name": "equivalence"}),
        span_limits=SpanLimits(max_span_attributes=20, max_span_attribute_length=16),
    )
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentation = HttpInstrumentation()
    instrumentation.uninstrument()
    instrumentation.instrument(tracer_provider=provider, capture_request_headers=["x-tag"])
    app.state.tracer = provider.get_tracer("tests.equivalence")
    try:
        with uvicorn_thread(app) as port:
            for path in PATHS:
                parent = f"00-{'a' * 32}-{'b' * 16}-01" if path == "/api" else None
                headers = {"x-tag": path, **({"traceparent": parent} if parent else {})}
                assert httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers).text == "ok"
            wait_until(
                # Four recorded server spans (not /drop) and the three handlers' children.
                lambda: sum(c[0] == "end" for c in processor.calls) >= 7,
                "every span to end",
            )
    finally:
        instrumentation.uninstrument()
        provider.shutdown()
    spans = sorted(
        (_normal(s) for s in exporter.get_finished_spans()),
        key=lambda s: (s["name"], str(s["attributes"])),
    )
    return spans, sampler.calls, sorted(processor.calls, key=repr)


def test_fast_path_is_indistinguishable_from_the_sdk_path() -> None:
    previous = os.environ.get(FAST_PATH_ENV)
    try:
        fast = run_requests("1")
        ordinary = run_requests("0")
    finally:
        if previous is None:
            os.environ.pop(FAST_PATH_ENV, None)
        else:
            os.environ[FAST_PATH_ENV] = previous
    fast_spans, fast_sampler, fast_processor = fast
    spans, sampler_calls, processor_calls = ordinary
    assert fast_sampler == sampler_calls
    assert fast_processor == processor_calls
    assert fast_spans == spans
    # ...and the story itself is the SDK's: DROP exports nothing, RECORD_ONLY is not exported
    # by SimpleSpanProcessor, limits drop and truncate, the handler's API calls all landed.
    names = [s["name"] for s in spans if s["kind"] is SpanKind.SERVER]
    assert sorted(names) == ["GET /api", "GET /limits", "GET /with-block"]
    api_span = next(s for s in spans if s["name"] == "GET /api")
    assert api_span["parent"] and api_span["status"] == (StatusCode.OK, None)  # OK has none
    assert api_span["attributes"]["user.list"] == ("a", "b")
    assert api_span["attributes"]["processor.saw_start"] is True
    assert [e[0] for e in api_span["events"]] == ["checkpoint", "exception"]
    assert api_span["links"] == [(0xDEF, {"why": "batch"})]
    limited = next(s for s in spans if s["name"] == "GET /limits")
    assert limited["dropped_attributes"] > 0
    assert all(len(v) <= 16 for v in limited["attributes"].values() if isinstance(v, str))
    blocked = next(s for s in spans if s["name"] == "GET /with-block")
    assert blocked["events"][0][1]["exception.type"] == "KeyError"
