"""The server side of the OpenTelemetry tests: in-memory spans and a control channel.

Every test app imports this module. It sets up, in the server process:

- a `TracerProvider` with `SimpleSpanProcessor(InMemorySpanExporter())`, so a
  span is in `EXPORTER` as soon as it ends (the provider is NOT the global one:
  `HttpInstrumentation` gets it through `tracer_provider=`, so a test notices
  if that option is ignored);
- `HttpInstrumentation().instrument(...)`, with options a test can change at
  run time through the control channel;
- three plain hooktel instruments around it, in this registration order:
  `probe` (before the OpenTelemetry one: its start hook records any span that
  is already current when a request starts, i.e. a context leaked from an
  earlier request), the optional `logger` (a user's own logging instrument)
  and `counter` (always last: it counts operations in flight, so "nothing in
  flight" means every span of the finished requests has been exported).

The control channel is `CONTROL_PREFIX` (`/_hooktel/...`), answered by
`control()`. ASGI and WSGI apps are wrapped in `asgi_control` / `wsgi_control`,
outside the framework (so the control requests never reach a hook point);
`http.server` handlers call `control()` themselves. Control URLs are always in
the excluded URLs too, in case a hook point does see them.

- `GET /_hooktel/state`: `{"spans": [...], "in_flight": n, "stale": [...], "log": [...]}`
- `POST /_hooktel/configure` with a JSON body, all keys optional:
  `{"env": {NAME: value or null}, "otel": {instrument kwargs} or false,
  "logger": true/false, "clear": true}`. `env` is applied first (so the
  instrumentation reads it), `otel` re-instruments with those kwargs (hooks by
  name, see `HOOKS`) or uninstruments with `false`, `clear` (the default)
  forgets spans, stale parents and the log.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hooktel
from hooktel.otel import HttpInstrumentation

CONTROL_PREFIX = "/_hooktel"
CONFIG_ENV = "HOOKTEL_TEST_OTEL_CONFIG"
"""JSON `configure` body applied at import; default `{"otel": {}}`."""
FAST_PATH_ENV = "HOOKTEL_OTEL_FAST_PATH"
EXCLUDED_ENV = ("OTEL_PYTHON_HOOKTEL_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")

# What the test routes of every app share.
CHILD_SPAN = "handler child"
"""Name of the span a handler starts with `tracer.start_as_current_span`."""
BOOM_MESSAGE = "kaput 42"
RESPONSE_HEADERS = (
    ("x-resp-info", "resp-info-value"),
    ("x-internal-id", "internal-42"),
    ("set-cookie", "sid=s3cr3t"),
)
REQUEST_HOOK_ATTRIBUTE = "test.request_hook"
RESPONSE_HOOK_ATTRIBUTE = "test.response_hook"
HOOK_ERROR = "hook exploded on purpose"

PROVIDER = TracerProvider(resource=Resource.create({"service.name": "hooktel-otel-tests"}))
EXPORTER = InMemorySpanExporter()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
tracer = PROVIDER.get_tracer("tests.otel.apps")

_lock = threading.Lock()
_in_flight: dict[int, str] = {}
_stale: list[dict[str, Any]] = []
_log: list[dict[str, Any]] = []
_refs: dict[str, hooktel.InstrumentRef] = {}
_otel = HttpInstrumentation()


# ---------------------------------------------------------------- handler helpers


def child_span(handler: str) -> dict[str, str]:
    """Start (and end) a child span as a handler would; return what was current in it."""
    with tracer.start_as_current_span(CHILD_SPAN, attributes={"handler": handler}) as span:
        ctx = span.get_span_context()
        parent = getattr(span, "parent", None)
        return {
            "handler": handler,
            "trace_id": f"{ctx.trace_id:032x}",
            "span_id": f"{ctx.span_id:016x}",
            "parent_span_id": f"{parent.span_id:016x}" if parent else "",
            "thread": threading.current_thread().name,
        }


def boom() -> None:
    raise RuntimeError(BOOM_MESSAGE)


def stream_params(query: dict[str, str]) -> tuple[int, float, float]:
    """`?n=&interval=&tail=`: chunks, seconds between them, seconds after the last one."""
    return (
        int(query.get("n", "4")),
        float(query.get("interval", "0.05")),
        float(query.get("tail", "0.2")),
    )


def chunk(i: int) -> bytes:
    return f"chunk-{i}\n".encode()


# ---------------------------------------------------------------- instruments


def _request_hook_record(span: Any, attrs: dict[str, Any]) -> None:
    span.set_attribute(REQUEST_HOOK_ATTRIBUTE, attrs["url.path"])


def _response_hook_record(span: Any, attrs: dict[str, Any]) -> None:
    span.set_attribute(RESPONSE_HOOK_ATTRIBUTE, attrs.get("http.response.status_code", 0))


def _hook_raise(span: Any, attrs: dict[str, Any]) -> None:
    raise RuntimeError(HOOK_ERROR)


HOOKS: dict[str, dict[str, Callable[[Any, dict[str, Any]], None]]] = {
    "request_hook": {"record": _request_hook_record, "raise": _hook_raise},
    "response_hook": {"record": _response_hook_record, "raise": _hook_raise},
}


def _probe_start(op_id: int, attrs: hooktel.Attributes) -> None:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        with _lock:
            _stale.append({"path": attrs.get("url.path"), "span_id": f"{ctx.span_id:016x}"})


def _counter_start(op_id: int, attrs: hooktel.Attributes) -> None:
    path = str(attrs.get("url.path", ""))
    if not path.startswith(CONTROL_PREFIX):
        with _lock:
            _in_flight[op_id] = path


def _counter_done(op_id: int, attrs: hooktel.Attributes) -> None:
    with _lock:
        _in_flight.pop(op_id, None)


_control_ops: set[int] = set()


def _logger_hook(event: str) -> Callable[[int, hooktel.Attributes], None]:
    """Log one hook call; control requests (http.server sees them) are left out."""

    def hook(op_id: int, attrs: hooktel.Attributes) -> None:
        if str(attrs.get("url.path", "")).startswith(CONTROL_PREFIX):
            _control_ops.add(op_id)
        if op_id in _control_ops:
            if event != "start":
                _control_ops.discard(op_id)
            return
        record = {"event": event, "op_id": op_id}
        for key in ("url.path", "http.response.status_code", "error.type"):
            if key in attrs:
                record[key] = attrs[key]
        with _lock:
            _log.append(record)

    return hook


def _attach(name: str, instrument: hooktel.Instrument) -> None:
    _detach(name)
    _refs[name] = hooktel.attach(instrument)


def _detach(name: str) -> None:
    ref = _refs.pop(name, None)
    if ref is not None:
        hooktel.detach(ref)


def _instrument(kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    for hook in ("request_hook", "response_hook"):
        if isinstance(kwargs.get(hook), str):
            kwargs[hook] = HOOKS[hook][kwargs[hook]]
    excluded = kwargs.get("excluded_urls")
    if excluded is not None:
        kwargs["excluded_urls"] = f"{CONTROL_PREFIX},{excluded}" if excluded else CONTROL_PREFIX
    elif not any(os.environ.get(name) for name in EXCLUDED_ENV):
        kwargs["excluded_urls"] = CONTROL_PREFIX
    _otel.uninstrument()
    _otel.instrument(tracer_provider=PROVIDER, **kwargs)


def configure(spec: dict[str, Any]) -> None:
    """Apply a `configure` body (see the module docstring)."""
    for name, value in spec.get("env", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _detach("counter")
    if "probe" not in _refs:
        probe = hooktel.Instrument("http", "probe", "1.0", on_operation_start=_probe_start)
        _attach("probe", probe)
    if "otel" in spec:
        if spec["otel"] is False:
            _otel.uninstrument()
        else:
            _instrument(spec["otel"])
    if spec.get("logger") is True:
        _attach(
            "logger",
            hooktel.Instrument(
                "http",
                "logger",
                "1.0",
                on_operation_start=_logger_hook("start"),
                on_operation_end=_logger_hook("end"),
                on_operation_error=_logger_hook("error"),
            ),
        )
    elif spec.get("logger") is False:
        _detach("logger")
    _attach(
        "counter",
        hooktel.Instrument(
            "http",
            "counter",
            "1.0",
            on_operation_start=_counter_start,
            on_operation_end=_counter_done,
            on_operation_error=_counter_done,
        ),
    )
    if spec.get("clear", True):
        EXPORTER.clear()
        with _lock:
            _stale.clear()
            _log.clear()


# ---------------------------------------------------------------- spans as JSON


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def span_json(span: ReadableSpan) -> dict[str, Any]:
    ctx, parent = span.context, span.parent
    assert ctx is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "trace_flags": int(ctx.trace_flags),
        "trace_state": ctx.trace_state.to_header(),
        "parent_trace_id": f"{parent.trace_id:032x}" if parent else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "parent_is_remote": parent.is_remote if parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": {k: _value(v) for k, v in (span.attributes or {}).items()},
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "events": [
            {
                "name": event.name,
                "timestamp": event.timestamp,
                "attributes": {k: _value(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


def state() -> dict[str, Any]:
    spans = [span_json(span) for span in EXPORTER.get_finished_spans()]
    with _lock:
        return {
            "spans": spans,
            "in_flight": len(_in_flight),
            "stale": list(_stale),
            "log": list(_log),
            "pid": os.getpid(),
            "instruments": [info.name for info in hooktel.instruments()],
            "fast_path_env": os.environ.get(FAST_PATH_ENV),
        }


def control(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """Answer one control request: (status, JSON body)."""
    action = path[len(CONTROL_PREFIX) :]
    if action == "/state":
        return 200, json.dumps(state()).encode()
    if action == "/configure" and method == "POST":
        configure(json.loads(body or b"{}"))
        return 200, b'{"ok": true}'
    return 404, b'{"error": "unknown control action"}'


# ---------------------------------------------------------------- wrappers

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def asgi_control(app: ASGIApp) -> ASGIApp:
    """`app`, with the control channel answered before the request reaches it."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CONTROL_PREFIX):
            await app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, content = control(scope["method"], scope["path"], body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": content})

    return wrapper


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_control(app: WSGIApp) -> WSGIApp:
    """`app`, with the control channel answered before the request reaches it."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL_PREFIX):
            return app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        status, content = control(environ["REQUEST_METHOD"], path, body)
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [content]

    return wrapper


configure(json.loads(os.environ.get(CONFIG_ENV) or '{"otel": {}}'))
print(f"[harness] ready in pid {os.getpid()}", file=sys.stderr, flush=True)
