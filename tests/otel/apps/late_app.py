"""The Starlette and FastAPI test apps, instrumented late or wrapped by hand.

`uvicorn tests.otel.apps.late_app:app`, with `HOOKTEL_TEST_FRAMEWORK`
(`starlette` or `fastapi`) and `HOOKTEL_TEST_LATE`:

- `startup`: `HttpInstrumentation().instrument()` runs inside the app's
  lifespan startup, after uvicorn's first event built the middleware stack;
- `after`: nothing is instrumented until the test configures it through the
  control channel, long after the stack was built;
- `by-hand`: the app is wrapped in `hooktel.asgi.TelemetryMiddleware` and
  `hooktel.frameworks.instrument()` never runs (it is made a no-op before the
  harness instruments), so only what importing the hook point installs helps.

Start it with the harness config `{"otel": false}` for `startup` and `after`.
With `HOOKTEL_TEST_GLOBAL_PROVIDER=1` the harness's provider is also the
global one, which turns FastAPI's own telemetry on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace

import hooktel.frameworks
from tests.otel.apps import harness

LATE = os.environ.get("HOOKTEL_TEST_LATE", "")
if os.environ.get("HOOKTEL_TEST_GLOBAL_PROVIDER") == "1":
    trace.set_tracer_provider(harness.PROVIDER)

if os.environ.get("HOOKTEL_TEST_FRAMEWORK") == "fastapi":
    from tests.otel.apps.fastapi_app import fastapi_app as framework_app
else:
    from tests.otel.apps.starlette_app import starlette_app as framework_app


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    if LATE == "startup":
        harness.configure({"otel": {}, "clear": False})
    yield


framework_app.router.lifespan_context = lifespan

if LATE == "by-hand":  # started with the harness config {"otel": false}
    hooktel.frameworks.instrument = lambda: None  # type: ignore[assignment]
    harness.configure({"otel": {}})
    from hooktel.asgi import TelemetryMiddleware

    app = harness.asgi_control(TelemetryMiddleware(framework_app))
else:
    app = harness.asgi_control(framework_app)
