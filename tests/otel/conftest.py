"""Fixtures for the OpenTelemetry server tests: each test app's server, started once.

`server` runs every test against every server/app pair of `support.KINDS`, each
under both values of `HOOKTEL_OTEL_FAST_PATH` (the fast span path and the
ordinary OpenTelemetry API path). A server starts once per session and pair;
pytest groups the tests by pair, so only one runs at a time. Before each test
the server is reset: instrumented with default options, nothing recorded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from tests.otel.support import FAST_PATHS, KINDS, OtelServer, launch


def installed(kind: str) -> bool:
    """Whether the framework of test app `kind` is installed (the SDK-floor run has no
    FastAPI: the pinned FastAPI needs a newer OpenTelemetry API)."""
    framework = kind.split("-", maxsplit=1)[0]
    return framework == "httpserver" or importlib.util.find_spec(framework) is not None


SERVER_PARAMS = [
    pytest.param(
        (kind, fast_path),
        id=f"{kind}-fast{fast_path}",
        marks=() if installed(kind) else pytest.mark.skip(reason=f"{kind} is not installed"),
    )
    for kind in KINDS
    for fast_path in FAST_PATHS
]


@pytest.fixture(scope="session", params=SERVER_PARAMS)
def running_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OtelServer]:
    kind, fast_path = request.param
    workdir = tmp_path_factory.mktemp(f"{kind}-fast{fast_path}")
    with launch(kind, workdir, fast_path=fast_path) as server:
        yield server


@pytest.fixture
def server(running_server: OtelServer) -> OtelServer:
    """A running test app, freshly reset: default instrumentation, no spans, no log."""
    running_server.reset()
    return running_server
