"""OpenTelemetry SERVER spans and HTTP server metrics from hooktel's HTTP hooks.

    from hooktel.otel import HttpInstrumentation
    HttpInstrumentation().instrument(tracer_provider=provider)

The only part of hooktel that imports `opentelemetry`; the hook points stay
free of it. Also registered as the `hooktel` entry point of the
`opentelemetry_instrumentor` group, so `opentelemetry-instrument` enables it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from .. import __version__, attach, detach, frameworks, httpserver
from .._registry.hooks import InstrumentRef
from .._registry.instrument import Instrument, InstrumentKind

if TYPE_CHECKING:
    from .export.processor import ExportStats, OTLPSpanProcessor
    from .logs import LoggingInstrumentation
    from .runtime import RuntimeMetrics

__all__ = [
    "ExportStats",
    "HttpInstrumentation",
    "LoggingInstrumentation",
    "OTLPSpanProcessor",
    "RuntimeMetrics",
]

_NAME = "hooktel.otel"
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


class HttpInstrumentation(BaseInstrumentor):  # type: ignore[misc]
    """Attaches to the hooktel registry (kind HTTP) and makes one SERVER span per request.

    `instrument()` options: `tracer_provider`, `meter_provider` (metrics: see
    `metrics.instrument`), `opt_in_metrics`, `capture_request_headers`,
    `capture_response_headers`, `excluded_urls`, `response_propagation`
    (`"traceparent"`, `"traceresponse"`, `"server-timing"` or `None`),
    `request_hook(span, attributes)` and `response_hook(span, attributes)`;
    contrib's option names where hooktel can honour them, and one warning
    naming each option it cannot (see `_config`). It also installs the hook
    points of `http.server` and of the frameworks
    `hooktel.frameworks` knows (Starlette/FastAPI, Flask, Django); any other
    ASGI or WSGI app is wrapped in `hooktel.asgi` / `hooktel.wsgi`
    `TelemetryMiddleware`.
    """

    _ref: InstrumentRef | None = None
    _metrics_ref: InstrumentRef | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        # Imported here, not above: `hooktel.propagation` (an OpenTelemetry propagator entry
        # point, loaded while `opentelemetry.propagate` itself imports) imports this package,
        # and `.spans` imports `opentelemetry.propagate`, which would not be ready yet.
        from ._config import Config
        from .metrics.instrument import ServerMetrics
        from .spans.server import ServerSpans

        config = Config.from_kwargs(kwargs)
        scope = (_NAME, __version__, _SCHEMA_URL)
        metrics = ServerMetrics.create(kwargs, config.excluded_urls, scope)
        if metrics is not None:  # first: its end hook runs while the server span is current
            self._metrics_ref = attach(metrics.instrument(f"{_NAME}.metrics", __version__))
        tracer = trace.get_tracer(
            _NAME, __version__, kwargs.get("tracer_provider"), schema_url=_SCHEMA_URL
        )
        spans = ServerSpans(tracer, config, _NAME, __version__)
        self._ref = attach(
            Instrument(
                kind=InstrumentKind.HTTP,
                name=_NAME,
                version=__version__,
                on_operation_start=spans.on_start,
                on_operation_inject=spans.on_inject if config.response_propagation else None,
                on_operation_end=spans.on_end,
                on_operation_error=spans.on_error,
                on_operation_message=spans.on_message if config.websocket_message_spans else None,
                capture_request_headers=spans.capture_request_headers,
                capture_response_headers=config.capture_response_headers,
            )
        )
        httpserver.instrument()
        frameworks.instrument()
        frameworks.traced_span = spans.borrowed  # FastAPI's own request span steps aside

    def _uninstrument(self, **kwargs: Any) -> None:
        for ref in (self._metrics_ref, self._ref):
            if ref is not None:
                detach(ref)
        if self._ref is not None:
            frameworks.traced_span = None
        self._ref = self._metrics_ref = None


def __getattr__(name: str) -> Any:
    """`OTLPSpanProcessor` and `ExportStats`, imported when first asked for: the export
    machinery costs ~15 ms of imports that `HttpInstrumentation` alone does not need."""
    if name in ("ExportStats", "OTLPSpanProcessor"):
        from .export import processor as _otlp_processor

        return getattr(_otlp_processor, name)
    if name == "LoggingInstrumentation":  # and `RuntimeMetrics`: each only where it is used
        from .logs import LoggingInstrumentation

        return LoggingInstrumentation
    if name == "RuntimeMetrics":
        from .runtime import RuntimeMetrics

        return RuntimeMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
