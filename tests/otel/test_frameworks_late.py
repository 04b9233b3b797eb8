"""Starlette/FastAPI exceptions and routes, however and whenever the app was instrumented.

uvicorn sends the lifespan startup before any request, and that builds the
app's middleware stack: an `instrument()` inside a startup handler, or one
made later (here through the control channel), comes after it. An app wrapped
by hand in `TelemetryMiddleware`, with no `hooktel.frameworks.instrument()`,
has only what importing the hook point installs. In each case a handler's
exception is reported (status ERROR, `error.type`, the `exception` event) and
the route is known.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otel.apps.harness import BOOM_MESSAGE
from tests.otel.conftest import installed
from tests.otel.support import KINDS, Kind, OtelServer, launch

MODES = ("startup", "after", "by-hand")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(
            (framework, mode),
            id=f"{framework}-{mode}",
            marks=() if installed(framework) else pytest.mark.skip(reason=f"no {framework}"),
        )
        for framework in ("starlette", "fastapi")
        for mode in MODES
    ],
)
def late_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OtelServer]:
    framework, mode = request.param
    base = KINDS[framework]
    kind = Kind(
        f"late-{framework}-{mode}",
        base.spec.__class__(
            tuple(
                "tests.otel.apps.late_app:app" if arg.endswith(":app") else arg
                for arg in base.spec.args
            ),
            base.spec.listening,
        ),
        routes=base.routes,
    )
    env = {"HOOKTEL_TEST_FRAMEWORK": framework, "HOOKTEL_TEST_LATE": mode}
    workdir = tmp_path_factory.mktemp(kind.name)
    with launch(kind, workdir, env=env, config={"otel": False}) as server:
        if mode == "after":
            server.reset()  # instrument() now, long after the lifespan startup
        yield server


def test_exception_is_reported_whenever_the_app_was_instrumented(late_server: OtelServer) -> None:
    response = late_server.get("/boom")
    assert response.status_code == 500
    span = late_server.server_span(response)
    assert span.status["code"] == "ERROR"
    assert span.attributes["error.type"] == "RuntimeError"
    event = span.event("exception")
    assert event["attributes"]["exception.type"] == "RuntimeError"
    assert event["attributes"]["exception.message"] == BOOM_MESSAGE


def test_route_is_reported_whenever_the_app_was_instrumented(late_server: OtelServer) -> None:
    for target, route in (("/items/7", "item"), ("/api/items/7", "api_item")):
        response = late_server.get(target)
        assert response.status_code == 200
        span = late_server.server_span(response)
        assert span.attributes["http.route"] == late_server.kind.route(route)
        assert span.name == f"GET {late_server.kind.route(route)}"
