"""The client side of the OpenTelemetry tests: start a test app's server, read its spans.

    with launch("starlette", workdir) as server:
        response = server.get("/items/1", headers={"traceparent": ...})
        span = server.server_span(response)        # waits until it is exported

Each server runs in a subprocess on 127.0.0.1 (port 0, read back from its
log), with one of the apps of `tests.otel.apps` and the harness described in
`tests.otel.apps.harness`: spans go to an `InMemorySpanExporter` in the
server and come back as JSON (`Span`) over the control channel. Every request
sent with `OtelServer.request` carries a unique `_t=` query parameter, so a
test finds its own span among everything recorded.

`KINDS` names every server/app pair, with what a test needs to know about it
(route templates, handler styles, how it answers an exception). To reuse a
server in another test module: `start(kind, workdir, fast_path=..., env=...)`
or `launch(...)`, then `server.reset(...)`, requests through `server.get(...)`
(or any httpx client, with `tag=`), and `server.server_span(response)` /
`server.wait_idle()` for the spans. Every app serves `/items/{id}` (a handler
span as child, JSON body with its ids, response headers to capture),
`/status/{code}`, `/boom`, `/stream?n=&interval=&tail=`, `/health`,
`/anything` (GET and PURGE) and `/api/items/{id}` (under a prefix); see
`tests.otel.apps`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.events import wait_for
from tests.support.servers import ROOT, ServerSpec, StderrLog, listening_port

FAST_PATH_ENV = "HOOKTEL_OTEL_FAST_PATH"
FAST_PATHS = ("0", "1")
CONTROL = "/_hooktel"
TAG_PARAM = "_t"
CONFIG_ENV = "HOOKTEL_TEST_OTEL_CONFIG"

# Environment variables the instrumentation reads; `reset()` unsets them unless given.
ENV_CAPTURE_REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
ENV_CAPTURE_RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
ENV_SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
ENV_EXCLUDED = "OTEL_PYTHON_EXCLUDED_URLS"
ENV_HOOKTEL_EXCLUDED = "OTEL_PYTHON_HOOKTEL_EXCLUDED_URLS"
ENV_SEMCONV = "OTEL_SEMCONV_STABILITY_OPT_IN"
INSTRUMENTATION_ENV = (
    ENV_CAPTURE_REQUEST,
    ENV_CAPTURE_RESPONSE,
    ENV_SANITIZE,
    ENV_EXCLUDED,
    ENV_HOOKTEL_EXCLUDED,
    ENV_SEMCONV,
)

_UVICORN = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"
_GUNICORN = r"Listening at: http://127\.0\.0\.1:(\d+)"


def _uvicorn(target: str) -> ServerSpec:
    return ServerSpec(
        ("-m", "uvicorn", target, "--host=127.0.0.1", "--port=0", "--no-access-log"),
        _UVICORN,
    )


def _gunicorn(target: str, worker: str = "sync") -> ServerSpec:
    return ServerSpec(
        (
            "-m",
            "gunicorn",
            "--bind=127.0.0.1:0",
            "--workers=1",  # the spans live in the worker's memory: one worker holds them all
            f"--worker-class={worker}",
            *(("--threads=4",) if worker == "gthread" else ()),
            "--graceful-timeout=5",
            "--no-control-socket",  # its default path is shared by every gunicorn on the machine
            target,
        ),
        _GUNICORN,
    )


@dataclass(frozen=True)
class Kind:
    """A server running one test app, and what the tests expect of it."""

    name: str
    spec: ServerSpec
    routes: Mapping[str, str] = field(default_factory=dict)
    """Logical route -> the framework's template: `item`, `status`, `anything`, `api_item`."""
    handlers: Mapping[str, str] = field(default_factory=dict)
    """Handler style (`async`, `sync`, `thread`) -> a path it serves, ending in an id."""
    exception_status: int | None = 500
    """What the client gets when a handler raises; None: the connection just closes."""

    def route(self, name: str) -> str | None:
        return self.routes.get(name)


# The same app under two workers (Flask) or two interfaces (Django) has the same routes.
_FLASK_ROUTES = {
    "item": "/items/<item_id>",
    "status": "/status/<int:code>",
    "anything": "/anything",
    "api_item": "/api/items/<item_id>",
}
_DJANGO_ROUTES = {  # resolver_match.route: no leading slash
    "item": "items/<str:item_id>",
    "status": "status/<int:code>",
    "anything": "anything",
    "api_item": "api/items/<str:item_id>",
}

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "starlette",
            _uvicorn("tests.otel.apps.starlette_app:app"),
            routes={
                "item": "/items/{item_id}",
                "status": "/status/{code:int}",
                "anything": "/anything",
                "api_item": "/api/items/{item_id}",
            },
            handlers={"async": "/items/", "sync": "/sync/"},
        ),
        Kind(
            "fastapi",
            _uvicorn("tests.otel.apps.fastapi_app:app"),
            routes={
                "item": "/items/{item_id}",
                "status": "/status/{code}",
                "anything": "/anything",
                "api_item": "/api/items/{item_id}",
            },
            handlers={"async": "/items/", "sync": "/sync/"},
        ),
        Kind(
            "flask-sync",
            _gunicorn("tests.otel.apps.flask_app:app"),
            routes=_FLASK_ROUTES,
            handlers={"sync": "/items/"},
        ),
        Kind(
            "flask-gthread",
            _gunicorn("tests.otel.apps.flask_app:app", "gthread"),
            routes=_FLASK_ROUTES,
            handlers={"thread": "/items/"},
        ),
        Kind(
            "django-asgi",
            _uvicorn("tests.otel.apps.django_app:asgi_app"),
            routes=_DJANGO_ROUTES,
            handlers={"sync": "/items/", "async": "/async/"},
        ),
        Kind(
            "django-wsgi",
            _gunicorn("tests.otel.apps.django_app:wsgi_app"),
            routes=_DJANGO_ROUTES,
            handlers={"sync": "/items/", "async": "/async/"},
        ),
        Kind(
            "httpserver",
            ServerSpec(
                ("-m", "tests.otel.apps.httpserver_app"), r"listening on http://127\.0\.0\.1:(\d+)"
            ),
            handlers={"thread": "/items/"},
            exception_status=None,
        ),
    )
}


@dataclass(frozen=True)
class Span:
    """One finished span, as the server's in-memory exporter held it."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    trace_flags: int
    trace_state: str
    parent_trace_id: str | None
    parent_span_id: str | None
    parent_is_remote: bool | None
    start: int
    end: int
    attributes: dict[str, Any]
    status: dict[str, Any]
    events: list[dict[str, Any]]
    scope: str | None

    @property
    def is_root(self) -> bool:
        return self.parent_span_id is None

    def is_child_of(self, other: Span) -> bool:
        return (self.trace_id, self.parent_span_id) == (other.trace_id, other.span_id)

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events if e["name"] == name]
        assert len(found) == 1, f"expected one {name!r} event, got {self.events}"
        return found[0]


@dataclass(frozen=True)
class State:
    """What the server's harness reports: spans, requests in flight, stale contexts, log."""

    spans: list[Span]
    in_flight: int
    stale: list[dict[str, Any]]
    log: list[dict[str, Any]]
    pid: int
    instruments: list[str]
    """The names of the attached hooktel instruments, in registration order."""
    fast_path_env: str | None
    """`HOOKTEL_OTEL_FAST_PATH` as the server process sees it."""

    def server_spans(self) -> list[Span]:
        return [s for s in self.spans if s.kind == "SERVER"]

    def tagged(self, tag: str) -> list[Span]:
        """SERVER spans of the requests sent with `_t=tag`."""
        return [
            s
            for s in self.server_spans()
            if f"{TAG_PARAM}={tag}" in str(s.attributes.get("url.query", "")).split("&")
        ]

    def children(self, parent: Span) -> list[Span]:
        return [s for s in self.spans if s.is_child_of(parent)]


def fresh_connections(timeout: float = 10.0) -> httpx.Client:
    """An httpx client that opens a new connection for every request."""
    return httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))


def new_tag() -> str:
    return uuid.uuid4().hex[:16]


def tag_of(response: httpx.Response) -> str:
    tag = response.request.url.params.get(TAG_PARAM)
    assert tag, f"{response.request.url} was not sent with a {TAG_PARAM}= tag"
    return str(tag)


@dataclass
class OtelServer(StderrLog):
    """A running test app: where it listens, its control channel, what it logged."""

    kind: Kind
    fast_path: str
    process: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    http: httpx.Client = field(default_factory=fresh_connections)
    """For control requests and `request()`: a new connection each time, so a server that
    closes a connection after an error never fails the next request on it."""

    @property
    def name(self) -> str:
        return self.kind.name

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    # ------------------------------------------------------------ control

    def configure(self, **spec: Any) -> None:
        """POST a `configure` body (see `tests.otel.apps.harness`)."""
        response = self.http.post(self.url(f"{CONTROL}/configure"), content=json.dumps(spec))
        assert response.status_code == 200, response.text

    def reset(
        self,
        otel: Mapping[str, Any] | bool = True,
        env: Mapping[str, str | None] | None = None,
        logger: bool = False,
    ) -> None:
        """Start a test from a known state: instrumented with `otel` kwargs, nothing recorded.

        `otel=True` means the default options; `False` leaves it uninstrumented.
        Every variable of `INSTRUMENTATION_ENV` is unset unless `env` gives it.
        """
        self.wait_idle()
        full_env: dict[str, str | None] = dict.fromkeys(INSTRUMENTATION_ENV)
        full_env.update(env or {})
        self.configure(
            env=full_env,
            otel=False if otel is False else ({} if otel is True else dict(otel)),
            logger=logger,
            clear=True,
        )

    def state(self) -> State:
        response = self.http.get(self.url(f"{CONTROL}/state"))
        assert response.status_code == 200, response.text
        data = response.json()
        data["spans"] = [Span(**span) for span in data["spans"]]
        return State(**data)

    def wait_idle(self, timeout: float = 10.0) -> State:
        """The state once no request is in flight: every finished request's span is in it."""

        def idle() -> State | None:
            state = self.state()
            return state if state.in_flight == 0 else None

        return wait_for(idle, f"{self.name}: requests in flight to finish", timeout)

    # ------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        client: httpx.Client | None = None,
        tag: str | None = None,
    ) -> httpx.Response:
        """Send one request tagged with `_t=` (a fresh tag unless given); return the response."""
        tag = tag or new_tag()
        separator = "&" if "?" in target else "?"
        return (client or self.http).request(
            method, self.url(f"{target}{separator}{TAG_PARAM}={tag}"), headers=headers
        )

    def get(self, target: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", target, **kwargs)

    def server_span(self, response_or_tag: httpx.Response | str) -> Span:
        """The one SERVER span of a tagged request, once nothing is in flight."""
        spans = self.server_spans(response_or_tag)
        assert len(spans) == 1, f"expected one SERVER span, got {spans}"
        return spans[0]

    def server_spans(self, response_or_tag: httpx.Response | str) -> list[Span]:
        tag = response_or_tag if isinstance(response_or_tag, str) else tag_of(response_or_tag)
        return self.wait_idle().tagged(tag)


def _answers(server: OtelServer) -> bool:
    try:
        return server.http.get(server.url(f"{CONTROL}/state"), timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def start(
    kind: Kind | str,
    workdir: Path,
    *,
    fast_path: str = "0",
    env: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> OtelServer:
    """Start a test app's server and return it once it answers; `stop()` it after.

    `env` is added to the server's environment (say `OTEL_PROPAGATORS`);
    `config` is the harness's `configure` body at import (default: instrument
    with default options).
    """
    kind = KINDS[kind] if isinstance(kind, str) else kind
    workdir.mkdir(parents=True, exist_ok=True)
    stderr_path = workdir / "stderr.log"
    full_env = {
        **os.environ,
        **(env or {}),
        FAST_PATH_ENV: fast_path,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    if config is not None:
        full_env[CONFIG_ENV] = json.dumps(config)
    with (workdir / "stdout.log").open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, *kind.spec.args], cwd=ROOT, env=full_env, stdout=stdout, stderr=stderr
        )
    try:
        port = wait_for(
            lambda: listening_port(kind.spec, stderr_path, process), f"{kind.name} to listen", 30
        )
        server = OtelServer(kind, fast_path, process, port, stderr_path)
        wait_for(lambda: _answers(server), f"{kind.name} to answer", 30)
    except BaseException:
        _stop(process)
        raise
    return server


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop(server: OtelServer) -> None:
    server.http.close()
    _stop(server.process)


@contextlib.contextmanager
def launch(kind: Kind | str, workdir: Path, **kwargs: Any) -> Iterator[OtelServer]:
    """`start()` as a context manager that always stops the server."""
    server = start(kind, workdir, **kwargs)
    try:
        yield server
    finally:
        stop(server)


# ------------------------------------------------------------ trace context helpers

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse_traceparent(value: str) -> tuple[str, str, int]:
    match = TRACEPARENT_RE.fullmatch(value)
    assert match, f"not a version-00 traceparent: {value!r}"
    return match.group(1), match.group(2), int(match.group(3), 16)
