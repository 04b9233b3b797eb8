"""Each place the seam degrades, forced on the installed SDK: the outcome stays the SDK's.

The seam (`hooktel/otel/_sdk/`) looks each private part up once and, where an SDK lacks it
or lays it out otherwise, takes a slower route. The SDK runs here has them all, so
each test makes the seam's probe answer as an SDK without them would (the probe, never
the SDK, is patched) and checks, through real servers, the real SDK and in-memory
exporters and readers, that the spans and metrics are those of the reference: the SDK's
own path for spans (`HOOKTEL_OTEL_FAST_PATH=0`), its `Histogram.record()` for metrics. The
floor and middle runs (scripts/floor.sh) take some of these routes for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.propagate import get_global_textmap
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hooktel.otel import _sdk
from hooktel.otel._sdk import metrics as metrics_seam
from hooktel.otel._sdk import trace as trace_seam
from hooktel.otel.metrics import histograms
from hooktel.otel.spans.fastpath import FastSpans
from hooktel.otel.spans.handover import takes_request_spans
from hooktel.otel.spans.parent import ParentExtractor
from tests.otel.inprocess import FAST_PATH_ENV, server_spans, traced, uvicorn_thread, wait_until
from tests.otel.test_fast_path_equivalence import run_requests
from tests.otel.test_metrics_equivalence import recorded_both_ways, same_data_each_round

# Without it, the SDK's `_tracer_metrics` is a no-op, which the seam already leaves out.
INTERNAL_METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"


def _none(*args: Any) -> None:
    """What an accessor gives where the SDK has no such thing."""


def _fast() -> Any:
    """The fast path for an SDK tracer, as the seam's probes now make it (None: off)."""
    return FastSpans.for_tracer(TracerProvider().get_tracer("probe"))


class _TakesRequestSpans(SpanProcessor):
    takes_ended_request_spans = True


def _taking_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(_TakesRequestSpans())
    return provider


# name: (module, probe, what an SDK without it gives, whether the slower route is taken)
FORCED: dict[str, tuple[Any, str, Any, Callable[[], bool]]] = {
    "ReadableSpan laid out otherwise": (
        trace_seam,
        "READABLE_LAYOUT",
        False,
        lambda: _fast() is None,  # the SDK makes the spans
    ),
    "SpanContext not the known tuple": (
        _sdk,
        "SPAN_CONTEXT_IS_TUPLE",
        False,
        lambda: _fast()._bits is None,  # ids from the id generator, checked by SpanContext
    ),
    "no BoundedAttributes._set_items": (
        trace_seam,
        "SET_ITEMS",
        False,
        lambda: _fast() is not None,  # the /limits request sets attributes one by one
    ),
    "no _on_ending": (
        trace_seam,
        "on_ending",
        _none,
        lambda: _fast()._on_ending is None,
    ),
    "no _tracer_metrics": (trace_seam, "tracer_metrics", _none, lambda: _fast()._metrics is None),
    "no _is_enabled": (trace_seam, "enabled_check", _none, lambda: _fast()._is_enabled is None),
    "processors not found": (
        trace_seam,
        "span_processors",
        _none,
        lambda: not takes_request_spans(_taking_provider().get_tracer("probe").span_processor),
    ),
    "propagators not found": (
        trace_seam,
        "composite_members",
        _none,
        lambda: not ParentExtractor(get_global_textmap)._w3c,  # headers through the propagator
    ),
    "another runtime context": (
        _sdk,
        "context_var",
        _none,
        lambda: trace_seam.span_attacher().__name__ == "attach_through_the_api",
    ),
}


@pytest.fixture(scope="module")
def reference() -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """Spans, sampler and processor calls of the SDK's own path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(INTERNAL_METRICS_ENV, "true")
        patch.setenv(FAST_PATH_ENV, "0")
        return run_requests("0")


@pytest.mark.parametrize("forced", list(FORCED))
def test_spans_stay_the_sdks(
    forced: str, reference: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, probe, absent, slower_route = FORCED[forced]
    monkeypatch.setattr(module, probe, absent)
    monkeypatch.setenv(INTERNAL_METRICS_ENV, "true")
    monkeypatch.setenv(FAST_PATH_ENV, "1")
    assert slower_route()
    spans, sampler_calls, processor_calls = run_requests("1")
    assert (spans, sampler_calls, processor_calls) == reference


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.mark.parametrize("mode", ["traceparent", "traceresponse"])
@pytest.mark.parametrize("tuple_layout", [True, False], ids=["tuple", "properties"])
def test_the_response_names_the_server_span_either_way(
    mode: str, tuple_layout: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SpanContext` read as the tuple it is, or through its properties (`on_inject`)."""
    monkeypatch.setattr(_sdk, "SPAN_CONTEXT_IS_TUPLE", tuple_layout)
    app = Starlette(routes=[Route("/", _ok)])
    with traced("1", response_propagation=mode) as (_, exporter), uvicorn_thread(app) as port:
        response = httpx.get(f"http://127.0.0.1:{port}/")
        (span,) = wait_until(lambda: server_spans(exporter), "the server span")
    context = span.get_span_context()
    ids = f"{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    assert response.headers[mode] == f"00-{ids}"


METRICS_FORCED: dict[str, tuple[Any, str, Any, dict[str, Any]]] = {
    # The SDK's metric internals not found: every measurement through `Histogram.record()`.
    "metric internals not found": (metrics_seam, "INTERNALS_FOUND", False, {"aggregated": False}),
    # The recorder reads a span context's flags through the property.
    "SpanContext not the known tuple": (_sdk, "SPAN_CONTEXT_IS_TUPLE", False, {}),
    # No context variable to read: the current span through the API, the recorder a loop.
    "another runtime context": (_sdk, "context_var", _none, {}),
}


@pytest.mark.parametrize("forced", list(METRICS_FORCED))
def test_metrics_stay_the_sdks(forced: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module, probe, absent, config = METRICS_FORCED[forced]
    monkeypatch.setattr(module, probe, absent)
    before = set(histograms._ALL)
    with recorded_both_ways(config) as both_ways:
        same_data_each_round(both_ways, config)
        made = set(histograms._ALL) - before
        recorders = {type(histogram.record).__name__ for histogram in made}
    if forced == "another runtime context":  # a loop, not the fused recorder
        assert recorders == {"function"}
    elif config.get("aggregated", True):
        compiled = not histograms.aggregator.__name__.endswith("_py")
        assert recorders == {"Recorder" if compiled else "function"}
    else:
        assert not made
