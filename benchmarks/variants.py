"""What is measured on each server: bare, hooktel (idle, one no-op instrument), peers.

A variant maps each interface it supports to a function that takes the app
(an ASGI/WSGI callable, or an `http.server` handler class), applies the
variant and returns what the server should run. Global state it changes
(attached instruments, patches) is undone through the `ExitStack`, so the
in-process benchmarks can apply and remove variants in one process. A server
runs a variant only when the variant supports the server's interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

Apply = Callable[[Any, ExitStack], Any]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    by_interface: Mapping[str, Apply]

    def supports(self, interface: str) -> bool:
        return interface in self.by_interface

    def apply(self, interface: str, app: Any, stack: ExitStack) -> Any:
        if interface not in self.by_interface:
            raise ValueError(f"variant {self.name!r} does not support {interface!r}")
        return self.by_interface[interface](app, stack)


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


def _otel_contrib_asgi(app: Any, stack: ExitStack) -> Any:
    # No TracerProvider is set anywhere: the API's no-op (proxy) tracer is used.
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


def _otel_contrib_wsgi(app: Any, stack: ExitStack) -> Any:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


_HOOKTEL: dict[str, Apply] = {
    "asgi": _hooktel_asgi,
    "wsgi": _hooktel_wsgi,
    "httpserver": _hooktel_httpserver,
}

BASELINE = "bare"

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            BASELINE,
            "the app as it is",
            {"asgi": _unchanged, "wsgi": _unchanged, "httpserver": _unchanged},
        ),
        Variant("hooktel-idle", "hooktel hook point, nothing attached", _HOOKTEL),
        Variant(
            "hooktel-noop",
            "hooktel hook point, one instrument with four no-op hooks",
            {name: _with_noop_instrument(wrap) for name, wrap in _HOOKTEL.items()},
        ),
        Variant(
            "otel-contrib-nosdk",
            "opentelemetry-instrumentation-asgi/-wsgi OpenTelemetryMiddleware, no SDK",
            {"asgi": _otel_contrib_asgi, "wsgi": _otel_contrib_wsgi},
        ),
    )
}
