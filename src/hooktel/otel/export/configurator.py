"""`OTEL_PYTHON_CONFIGURATOR=hooktel_otlp`: `opentelemetry-instrument` exports through hooktel.

    OTEL_PYTHON_CONFIGURATOR=hooktel_otlp opentelemetry-instrument python app.py

The launcher runs one configurator (entry point group
`opentelemetry_configurator`); this one sets the SDK up exactly as the
SDK's own (`opentelemetry-distro`'s) does, except that the `otlp` and
`otlp_proto_http` traces exporters (and `OTEL_TRACES_EXPORTER` left unset,
whose default is `otlp`) become one `OTLPSpanProcessor`, configured from the
same `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables. It speaks OTLP/HTTP
whatever `OTEL_EXPORTER_OTLP_PROTOCOL` says; `otlp_proto_grpc` named
explicitly, and any other exporter (`console`, ...), stay as they are.

Where the launcher loads it without being asked (no `OTEL_PYTHON_CONFIGURATOR`,
and this entry point happens to come first), it is the SDK's configurator
and nothing more: installing hooktel never changes an unchanged setup.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace

from .._sdk import trace as seam
from .processor import OTLPSpanProcessor

NAME = "hooktel_otlp"
CONFIGURATOR_ENV = "OTEL_PYTHON_CONFIGURATOR"
TRACES_EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
REPLACED = frozenset({"otlp", "otlp_proto_http"})


_SDKConfigurator: Any = seam.sdk_configurator()


class OTLPConfigurator(_SDKConfigurator):  # type: ignore[misc]
    """The SDK's configurator, with hooktel's `OTLPSpanProcessor` for OTLP traces."""

    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get(CONFIGURATOR_ENV, "").strip() != NAME:
            seam.configure_sdk(self, **kwargs)
            return
        names = [
            name.strip()
            for name in os.environ.get(TRACES_EXPORTER_ENV, "otlp").split(",")
            if name.strip()
        ]
        kept = [name for name in names if name not in REPLACED]
        previous = os.environ.get(TRACES_EXPORTER_ENV)
        os.environ[TRACES_EXPORTER_ENV] = ",".join(kept) or "none"  # what the SDK still sets up
        try:
            seam.configure_sdk(self, **kwargs)
        finally:
            if previous is None:
                del os.environ[TRACES_EXPORTER_ENV]
            else:
                os.environ[TRACES_EXPORTER_ENV] = previous
        if len(kept) < len(names):
            # The provider the SDK just set globally (by the API, on every SDK version).
            provider = trace.get_tracer_provider()
            add = getattr(provider, "add_span_processor", None)
            if add is None:
                raise RuntimeError(f"{NAME}: no SDK TracerProvider was set up")
            add(OTLPSpanProcessor())
