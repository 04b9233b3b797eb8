"""What is measured on each server: bare, hooktel, the OpenTelemetry peers, and the SDK floor.

A variant maps each app kind it supports (`apps.AppSpec.kind`: `asgi` and
`wsgi` are the raw apps, then `starlette`, `flask`, `httpserver`) to a
function that takes the app (an ASGI/WSGI callable, or an `http.server`
handler class), applies the variant and returns what the server should run.
Global state it changes (attached instruments, patches, tracer providers) is
undone through the `ExitStack`, so the in-process steps can apply and remove
variants in one process. A server runs a variant only when the variant
supports the kind of its app.

Every traced variant uses the same SDK setup (`otelsdk.tracer_provider`:
`TracerProvider` + `BatchSpanProcessor`, an exporter that drops spans), passed
to each instrumentation as its `tracer_provider`; no global provider is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from .otelsdk import environ, meter_provider, tracer_provider

Apply = Callable[[Any, ExitStack], Any]

OTLP_ENDPOINT_ENV = "HOOKTEL_BENCH_OTLP_ENDPOINT"  # set by the harness while a receiver runs
DD_AGENT_ENV = "HOOKTEL_BENCH_DD_AGENT_URL"  # set by the harness while a stand-in agent runs
FAST_PATH_ENV = "HOOKTEL_OTEL_FAST_PATH"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    by_kind: Mapping[str, Apply]
    needs_receiver: bool = False  # exports to the OTLP receiver: load step only
    needs_agent: bool = False  # sends to the stand-in Datadog agent: load step only
    reference: bool = False  # not an instrumentation: a bound to compare with (`SDK_FLOOR`)
    # What must happen before the app is made (a tracer that patches the framework's
    # classes): `apps.make` calls it first.
    before_app: Callable[[], None] | None = None

    def supports(self, kind: str) -> bool:
        return kind in self.by_kind

    def apply(self, kind: str, app: Any, stack: ExitStack) -> Any:
        if kind not in self.by_kind:
            raise ValueError(f"variant {self.name!r} does not support {kind!r} apps")
        return self.by_kind[kind](app, stack)


def _unchanged(app: Any, stack: ExitStack) -> Any:
    return app


def _noop(*args: object) -> None:
    """A hook that does nothing (also used as the inject hook: returns no headers)."""


def attach_noop_instrument(stack: ExitStack) -> None:
    """Attach one HTTP instrument whose four hooks do nothing; detached when `stack` closes."""
    import hooktel

    instrument = hooktel.Instrument(
        kind=hooktel.InstrumentKind.HTTP,
        name="bench-noop",
        version="1",
        on_operation_start=_noop,
        on_operation_inject=_noop,
        on_operation_end=_noop,
        on_operation_error=_noop,
    )
    stack.enter_context(hooktel.attach(instrument))


def _hooktel_asgi(app: Any, stack: ExitStack) -> Any:
    from hooktel.asgi import TelemetryMiddleware

    return TelemetryMiddleware(app)


def _hooktel_wsgi(app: Any, stack: ExitStack) -> Any:
    from hooktel.wsgi import TelemetryMiddleware

    return TelemetryMiddleware(app)


def _hooktel_httpserver(handler: Any, stack: ExitStack) -> Any:
    import hooktel.httpserver

    hooktel.httpserver.instrument()
    stack.callback(hooktel.httpserver.uninstrument)
    return handler


def _with_noop_instrument(wrap: Apply) -> Apply:
    def apply(app: Any, stack: ExitStack) -> Any:
        wrapped = wrap(app, stack)
        attach_noop_instrument(stack)
        return wrapped

    return apply


# How a user puts hooktel's hook points on each kind of app: raw apps are
# wrapped by hand; `HttpInstrumentation().instrument()` patches http.server,
# Starlette and Flask itself (`hooktel.frameworks`).
_HOOK_POINT: dict[str, Apply] = {
    "asgi": _hooktel_asgi,
    "wsgi": _hooktel_wsgi,
    "httpserver": _unchanged,
    "starlette": _unchanged,
    "flask": _unchanged,
}


def instrument_hooktel(stack: ExitStack, provider: TracerProvider, **options: Any) -> None:
    """`HttpInstrumentation().instrument(tracer_provider=provider)`; all of it undone on `stack`.

    The fast span path (`HOOKTEL_OTEL_FAST_PATH=1`, the default, read when the
    instrumentation starts) is set whatever the caller's environment says.
    Uninstrumenting detaches the instrument but leaves the hook points
    installed, so they are removed too (the in-process steps need a bare app
    to be bare again).
    """
    from hooktel import frameworks, httpserver
    from hooktel.otel import HttpInstrumentation

    instrumentation = HttpInstrumentation()
    with environ(FAST_PATH_ENV, "1"):
        instrumentation.instrument(tracer_provider=provider, **options)
    stack.callback(httpserver.uninstrument)
    stack.callback(frameworks.uninstrument)
    stack.callback(instrumentation.uninstrument)


def hooktel_otel(kind: str, **processor: Any) -> Apply:
    """hooktel `HttpInstrumentation` with the SDK (drop exporter unless `exporter=` is given)."""

    def apply(app: Any, stack: ExitStack) -> Any:
        instrument_hooktel(stack, tracer_provider(stack, **processor))
        return _HOOK_POINT[kind](app, stack)

    return apply


def _hooktel_metrics(kind: str) -> Apply:
    """hooktel-otel, with metrics too (`meter_provider=`: the duration histogram)."""

    def apply(app: Any, stack: ExitStack) -> Any:
        instrument_hooktel(stack, tracer_provider(stack), meter_provider=meter_provider(stack))
        return _HOOK_POINT[kind](app, stack)

    return apply


def _otlp_exporter() -> Any:
    """The stock OTLP/HTTP span exporter, to the receiver the harness started."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = os.environ.get(OTLP_ENDPOINT_ENV)
    if not endpoint:
        raise RuntimeError(f"{OTLP_ENDPOINT_ENV} is not set: no OTLP receiver is running")
    return OTLPSpanExporter(endpoint=endpoint)


def _hooktel_otlp(kind: str) -> Apply:
    def apply(app: Any, stack: ExitStack) -> Any:
        return hooktel_otel(kind, exporter=_otlp_exporter())(app, stack)

    return apply


def _hooktel_otlp_native(kind: str) -> Apply:
    """hooktel with `OTLPSpanProcessor` (native encoding) to the receiver the harness started."""

    def apply(app: Any, stack: ExitStack) -> Any:
        from opentelemetry.sdk.trace import TracerProvider

        from hooktel.otel import OTLPSpanProcessor

        endpoint = os.environ.get(OTLP_ENDPOINT_ENV)
        if not endpoint:
            raise RuntimeError(f"{OTLP_ENDPOINT_ENV} is not set: no OTLP receiver is running")
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(OTLPSpanProcessor(endpoint=endpoint))
        stack.callback(provider.shutdown)  # at exit: what is queued is sent
        instrument_hooktel(stack, provider)
        return _HOOK_POINT[kind](app, stack)

    return apply


def _ddtrace() -> None:
    """Datadog's ddtrace for a Starlette app, to the stand-in agent (`receiver --datadog`).

    As its documentation sets it up: `patch(starlette=True)` before the app
    is made (it patches `Starlette.__init__` and `Route.__init__`), no telemetry,
    remote configuration or runtime metrics (nothing listens for them).
    """
    url = os.environ.get(DD_AGENT_ENV)
    if not url:
        raise RuntimeError(f"{DD_AGENT_ENV} is not set: no stand-in agent is running")
    os.environ.update(
        {
            "DD_TRACE_AGENT_URL": url,
            "DD_SERVICE": "bench",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_RUNTIME_METRICS_ENABLED": "false",
            "DD_TRACE_STARTUP_LOGS": "false",
        }
    )
    import ddtrace

    ddtrace.patch(starlette=True)


def _contrib_asgi(app: Any, stack: ExitStack, metrics: bool = False) -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    meters = meter_provider(stack) if metrics else None  # else the global no-op one
    return OpenTelemetryMiddleware(
        app, tracer_provider=tracer_provider(stack), meter_provider=meters
    )


def _contrib_asgi_metrics(app: Any, stack: ExitStack) -> Any:
    return _contrib_asgi(app, stack, metrics=True)


def _contrib_wsgi(app: Any, stack: ExitStack) -> Any:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, tracer_provider=tracer_provider(stack))


def _contrib_flask(app: Any, stack: ExitStack) -> Any:
    # The contrib WSGI documentation's way for Flask: wrap `app.wsgi_app`.
    app.wsgi_app = _contrib_wsgi(app.wsgi_app, stack)
    return app


def _floor_asgi(app: Any, stack: ExitStack) -> Any:
    # Starlette too: the Starlette app is wrapped as the raw ASGI app it is.
    from .floor import floor_asgi

    return floor_asgi(app, tracer_provider(stack))


def _floor_otlp(app: Any, stack: ExitStack) -> Any:
    from .floor import floor_asgi

    return floor_asgi(app, tracer_provider(stack, exporter=_otlp_exporter()))


def _floor_wsgi(app: Any, stack: ExitStack) -> Any:
    from .floor import floor_wsgi

    return floor_wsgi(app, tracer_provider(stack))


def _floor_flask(app: Any, stack: ExitStack) -> Any:
    app.wsgi_app = _floor_wsgi(app.wsgi_app, stack)  # as `otel-contrib` does
    return app


def _starlette_own(app: Any, stack: ExitStack) -> Any:
    from starlette.middleware.opentelemetry import OpenTelemetryMiddleware

    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=tracer_provider(stack))
    return app


def label(variant: str, source: str) -> str:
    """A load run's name: the variant's, with the hooktel snapshot it ran on when a run
    compares several (`--source`)."""
    return f"{variant}@{source}" if source else variant


def unlabel(name: str) -> tuple[str, str]:
    """The variant and the snapshot a load run's name says (`label`, read back)."""
    variant, _, source = name.partition("@")
    return variant, source


BASELINE = "bare"
HOOKTEL_OTEL = "hooktel-otel"
HOOKTEL_OTLP = "hooktel-otlp"
HOOKTEL_METRICS = "hooktel-otel-metrics"
HOOKTEL_OTLP_NATIVE = "hooktel-otlp-native"
SDK_FLOOR = "sdk-floor"
SDK_FLOOR_OTLP = "sdk-floor-otlp"

_ALL_KINDS = ("asgi", "wsgi", "httpserver", "starlette", "flask")

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(BASELINE, "the app as it is", dict.fromkeys(_ALL_KINDS, _unchanged)),
        # the hook points alone
        Variant(
            "hooktel-idle",
            "hooktel hook point, nothing attached",
            {"asgi": _hooktel_asgi, "wsgi": _hooktel_wsgi, "httpserver": _hooktel_httpserver},
        ),
        Variant(
            "hooktel-noop",
            "hooktel hook point, one instrument with four no-op hooks",
            {
                kind: _with_noop_instrument(wrap)
                for kind, wrap in (
                    ("asgi", _hooktel_asgi),
                    ("wsgi", _hooktel_wsgi),
                    ("httpserver", _hooktel_httpserver),
                )
            },
        ),
        # spans through the SDK
        Variant(
            HOOKTEL_OTEL,
            "hooktel HttpInstrumentation, SDK (fast span path, the default)",
            {kind: hooktel_otel(kind) for kind in _ALL_KINDS},
        ),
        Variant(
            "otel-contrib",
            "opentelemetry-instrumentation-asgi/-wsgi OpenTelemetryMiddleware, SDK",
            {
                "asgi": _contrib_asgi,
                "starlette": _contrib_asgi,
                "wsgi": _contrib_wsgi,
                "flask": _contrib_flask,
            },
        ),
        Variant(
            "starlette-otel",
            "starlette.middleware.opentelemetry.OpenTelemetryMiddleware, SDK",
            {"starlette": _starlette_own},
        ),
        Variant(
            HOOKTEL_OTLP,
            "hooktel HttpInstrumentation, SDK, BatchSpanProcessor + OTLPSpanExporter (stock) "
            "to a receiver process",
            {"starlette": _hooktel_otlp("starlette"), "asgi": _hooktel_otlp("asgi")},
            needs_receiver=True,
        ),
        # metrics from the same hooks
        Variant(
            HOOKTEL_METRICS,
            "hooktel HttpInstrumentation, SDK, spans and metrics (meter_provider=)",
            {kind: _hooktel_metrics(kind) for kind in ("asgi", "starlette")},
        ),
        Variant(
            "otel-contrib-metrics",
            "contrib asgi OpenTelemetryMiddleware, SDK, spans and its default metrics",
            {"asgi": _contrib_asgi_metrics, "starlette": _contrib_asgi_metrics},
        ),
        # export over OTLP, and another vendor's tracer
        Variant(
            HOOKTEL_OTLP_NATIVE,
            "hooktel HttpInstrumentation, SDK, OTLPSpanProcessor (native encoding) "
            "to a receiver process",
            {kind: _hooktel_otlp_native(kind) for kind in ("starlette", "asgi")},
            needs_receiver=True,
        ),
        Variant(
            "ddtrace",
            "Datadog ddtrace, patch(starlette=True), to a stand-in agent process",
            {"starlette": _unchanged},
            needs_agent=True,
            before_app=_ddtrace,
        ),
        # A reference, not an instrumentation (`benchmarks/floor.py`): the bound
        # on what anything going through the SDK's sampler and processor can reach.
        Variant(
            SDK_FLOOR,
            "reference: only the SDK calls any SDK-backed instrumentation must make (no hooktel)",
            {
                "asgi": _floor_asgi,
                "starlette": _floor_asgi,
                "wsgi": _floor_wsgi,
                "flask": _floor_flask,
            },
            reference=True,
        ),
        Variant(
            SDK_FLOOR_OTLP,
            "reference: sdk-floor with the OTLP/HTTP exporter to the receiver process",
            {"starlette": _floor_otlp},
            needs_receiver=True,
            reference=True,
        ),
    )
}
