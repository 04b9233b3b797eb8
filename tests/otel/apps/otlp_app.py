"""Apps that export their spans with `OTLPSpanProcessor`, configured from the environment.

`GET /work` makes hooktel's SERVER span and one child span started with the
SDK tracer (`work`, with the serving process's pid as `app.pid`), so spans a
handler makes go through the processor too; it answers that pid.
`GET /_control/stats` (`?flush=1`: force a flush first) answers the
processor's `stats()`, the requests served, the pid and which encoder runs.
`/_control` is not traced. `asgi_app` is a Starlette app (uvicorn), `wsgi_app`
a Flask app (gunicorn); both share one provider per process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from hooktel.otel import HttpInstrumentation, OTLPSpanProcessor
from hooktel.otel.export.thread import ENCODER_NATIVE

provider = TracerProvider(resource=Resource.create({"service.name": "otlp-app"}))
processor = OTLPSpanProcessor()
provider.add_span_processor(processor)
HttpInstrumentation().instrument(tracer_provider=provider, excluded_urls="/_control")
tracer = provider.get_tracer("tests.otel.apps.otlp_app")
_lock = threading.Lock()
_served = [0]  # /work requests this process served


def work() -> int:
    with _lock:
        _served[0] += 1
    with tracer.start_as_current_span("work") as span:
        span.set_attribute("app.pid", os.getpid())
    return os.getpid()


def stats(flush: bool) -> dict[str, Any]:
    flushed = processor.force_flush(30_000) if flush else None
    with _lock:
        served = _served[0]
    return {
        **asdict(processor.stats()),
        "served": served,
        "flushed": flushed,
        "pid": os.getpid(),
        "native": ENCODER_NATIVE,
    }


def _reset_in_child() -> None:
    """A forked worker counts what it serves itself (gunicorn --preload forks after import)."""
    global _lock  # noqa: PLW0603 - a lock held at fork time would stay held in the child
    _lock = threading.Lock()
    _served[0] = 0


os.register_at_fork(after_in_child=_reset_in_child)


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def work_route(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(work()))

    def stats_route(request: Request) -> JSONResponse:
        return JSONResponse(stats(request.query_params.get("flush") == "1"))

    return Starlette(routes=[Route("/work", work_route), Route("/_control/stats", stats_route)])


def _flask_app() -> Any:
    from flask import Flask, request

    app = Flask("otlp_app")

    @app.get("/work")
    def work_route() -> str:
        return str(work())

    @app.get("/_control/stats")
    def stats_route() -> dict[str, Any]:
        return stats(request.args.get("flush") == "1")

    return app


asgi_app = _starlette_app()
wsgi_app = _flask_app()
