"""Everything hooktel knows about web frameworks: the one seam to their internals.

Two kinds of patches, both applied when the framework is imported (an import
hook), so nothing here imports a framework the app does not use:

- **Notes** tell the hook points what only the framework knows, through the
  scope/environ keys of `hooktel._http.request`: the matched route template
  (`hooktel.route`) and the exception the framework turned into its own 5xx
  (`hooktel.exception`). They are installed as soon as a hook point module
  (`hooktel.asgi`, `hooktel.wsgi`) is imported, so an app wrapped by hand
  gets them too, and they work on apps built before they were installed.
  They write only for requests a hook point reports, and stay installed.
- **Hook points**: `instrument()` routes every Starlette/FastAPI, Flask and
  Django app through `hooktel.asgi` / `hooktel.wsgi` `TelemetryMiddleware`,
  so no app has to be wrapped by hand; `uninstrument()` removes them. An app
  also wrapped by hand reports once: the outermost middleware wins.

FastAPI 0.165 has OpenTelemetry tracing of its own, on whenever a global
tracer provider is set. For the requests hooktel traces, its request span
steps aside: FastAPI gets hooktel's SERVER span instead (which it cannot end),
so its operation spans (dependencies, endpoint, serialization) become children
of hooktel's span, and every request has one SERVER span. Its metrics and logs
are left as they are.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from types import ModuleType
from typing import Any

from ._http.request import EXCEPTION_KEY, OPERATION_KEY, ROUTE_KEY
from ._importhook import Patcher, cancel, when_imported

_log = logging.getLogger("hooktel")
_lock = threading.Lock()

traced_span: Callable[[int], Any] | None = None
"""Set by `hooktel.otel` while it traces: operation id -> the SERVER span FastAPI may hold
(one it can read and annotate but not end), or None for a request it does not trace."""


# ---------------------------------------------------------------- notes and hook points

_notes_installed = False
_patches: list[tuple[Any, str, Any]] = []  # hook points: (owner, attribute, original), to undo
_instrumented = False


def install_notes() -> None:
    """Let every framework tell the hook points its route and swallowed exception (once)."""
    global _notes_installed  # noqa: PLW0603 - once per process
    with _lock:
        if _notes_installed:
            return
        _notes_installed = True
    when_imported("starlette.routing", _note_starlette_routes)
    when_imported("starlette.middleware.errors", _note_starlette_exceptions)
    when_imported("fastapi.routing", _note_fastapi_routes)
    when_imported("fastapi.telemetry._asgi", _fastapi_request_span_steps_aside)
    when_imported("flask.ctx", _note_flask_routes)
    when_imported("flask.signals", _note_flask_exceptions)
    when_imported("django.core.handlers.base", _note_django_routes)
    when_imported("django.core.signals", _note_django_exceptions)


def instrument() -> None:
    """Install the framework hook points (now or when each framework is imported); idempotent."""
    global _instrumented  # noqa: PLW0603 - one set of hook points per process
    with _lock:
        if _instrumented:
            return
        _instrumented = True
    install_notes()
    when_imported("starlette.applications", _hook_starlette)
    when_imported("fastapi.applications", _hook_fastapi)
    when_imported("flask.app", _hook_flask)
    when_imported("django.core.handlers.wsgi", _hook_django_wsgi)
    when_imported("django.core.handlers.asgi", _hook_django_asgi)


def uninstrument() -> None:
    """Remove the hook points `instrument()` installed (the notes stay: they are inert)."""
    global _instrumented  # noqa: PLW0603
    with _lock:
        _instrumented = False
        cancel(_HOOK_POINTS)
        while _patches:
            owner, attribute, original = _patches.pop()
            setattr(owner, attribute, original)


def _patch(owner: Any, attribute: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, attribute)
    _patches.append((owner, attribute, original))
    setattr(owner, attribute, make(original))


def _entry_key(original: Any) -> str:
    """Where an app keeps its wrapped entry point: one per patched class, as FastAPI's
    `__call__` ends in Starlette's and both are patched (the inner hook point sees the
    request marked and steps aside)."""
    return f"_hooktel_entry_{original.__qualname__}"


def _wrapped_entry(app: Any, key: str, original: Any, interface: str) -> Any:
    """The app's own wrapped entry point, made on its first request (`interface`: the
    hook point module, `asgi` or `wsgi`, imported then: it imports this module)."""
    middleware = importlib.import_module(f".{interface}", __package__).TelemetryMiddleware
    wrapped = app.__dict__[key] = middleware(partial(original, app))
    return wrapped


def _asgi_entry(original: Any) -> Any:
    key = _entry_key(original)

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if OPERATION_KEY in scope:  # an outer hook point reports it (FastAPI's, around this)
            await original(self, scope, receive, send)
            return
        wrapped = self.__dict__.get(key)
        if wrapped is None:
            wrapped = _wrapped_entry(self, key, original, "asgi")
        await wrapped(scope, receive, send)

    return __call__


def _wsgi_entry(original: Any) -> Any:
    key = _entry_key(original)

    def __call__(self: Any, environ: Any, start_response: Any) -> Any:
        wrapped = self.__dict__.get(key)
        if wrapped is None:
            wrapped = _wrapped_entry(self, key, original, "wsgi")
        return wrapped(environ, start_response)

    return __call__


# ---------------------------------------------------------------- Starlette and FastAPI


def _hook_starlette(module: ModuleType) -> None:
    # __call__, not build_middleware_stack: FastAPI overrides the latter.
    _patch(module.Starlette, "__call__", _asgi_entry)


def _hook_fastapi(module: ModuleType) -> None:
    # FastAPI 0.165's own __call__ starts its telemetry before it calls Starlette's:
    # the hook point goes outside it, so FastAPI sees the request hooktel traces.
    if "__call__" in vars(module.FastAPI):
        _patch(module.FastAPI, "__call__", _asgi_entry)


def _note_starlette_routes(module: ModuleType) -> None:
    _wrap_handle(module.Route)
    _wrap_handle(module.WebSocketRoute)


def _note_fastapi_routes(module: ModuleType) -> None:
    _wrap_handle(module.APIRoute)  # it overrides Route.handle, not always calling it


def _wrap_handle(route_class: Any) -> None:
    """Note the route when a route starts handling: routing is final for it then.

    A plain function returning the original coroutine, so the note costs no
    extra frame; the first route noted wins (a router may hand on to another).
    """
    original = route_class.handle

    def handle(self: Any, scope: Any, receive: Any, send: Any) -> Any:
        if OPERATION_KEY in scope and ROUTE_KEY not in scope:
            route = starlette_route(scope, self)
            if route is not None:
                scope[ROUTE_KEY] = route
        return original(self, scope, receive, send)

    route_class.handle = handle


def starlette_route(scope: Any, route: Any) -> str | None:
    """The template of Starlette `route`, after the paths of the `Mount`s above it.

    Starlette adds each mount's path to `root_path`; `app_root_path` is the
    root path before them. FastAPI's included routers keep the route as
    declared (without the prefixes), and the whole template in their
    effective route context. Without mounts and FastAPI it is `route.path`.
    """
    fastapi = scope.get("fastapi")
    if fastapi is None:
        path = getattr(route, "path", None)
    else:
        effective = fastapi.get("effective_route_context") if isinstance(fastapi, dict) else None
        path = getattr(effective, "path_format", None)
        if not isinstance(path, str):
            path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    root_path = scope.get("root_path") or ""
    app_root_path = scope.get("app_root_path", root_path)
    if root_path == app_root_path:  # mounted nowhere: the usual case
        return path
    mounted = (
        isinstance(root_path, str)
        and isinstance(app_root_path, str)
        and root_path.startswith(app_root_path)
    )
    return root_path[len(app_root_path) :] + path if mounted else path


def _note_starlette_exceptions(module: ModuleType) -> None:
    """Starlette answers an exception with a 500, and re-raises it only after the
    response is out: note it on the way, inside its `ServerErrorMiddleware`.

    `__call__` is patched, not `__init__`, so a middleware stack built before
    (uvicorn's lifespan startup builds it before any request) is covered too.
    """
    errors = module.ServerErrorMiddleware
    original = errors.__call__

    def __call__(self: Any, scope: Any, receive: Any, send: Any) -> Any:
        if type(self.app) is not _NoteException:
            self.app = _NoteException(self.app)
        return original(self, scope, receive, send)

    errors.__call__ = __call__


class _NoteException:
    """Wraps the app inside Starlette's `ServerErrorMiddleware`: keeps what it raises."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            scope[EXCEPTION_KEY] = exc
            raise


_STEPPING_ASIDE: ContextVar[Any] = ContextVar("hooktel_fastapi_server_span", default=None)


def _fastapi_request_span_steps_aside(module: ModuleType) -> None:
    """FastAPI's own request span gives way to hooktel's, for the requests hooktel traces."""
    telemetry = getattr(module, "NativeTelemetry", None)
    if telemetry is None or not callable(getattr(telemetry, "_get_tracer", None)):
        _log.warning(
            "hooktel: this FastAPI has telemetry of its own that hooktel does not know: "
            "with a global tracer provider each request gets a second SERVER span; "
            "pass FastAPI(telemetry={'tracing': False}) to keep hooktel's alone"
        )
        return
    call, get_tracer = telemetry.__call__, telemetry._get_tracer

    async def __call__(self: Any, **kwargs: Any) -> None:
        lookup, op_id = traced_span, kwargs["scope"].get(OPERATION_KEY)
        span = lookup(op_id) if lookup is not None and op_id is not None else None
        if span is None:
            await call(self, **kwargs)
            return
        token = _STEPPING_ASIDE.set(span)
        try:
            await call(self, **kwargs)
        finally:
            _STEPPING_ASIDE.reset(token)

    def _get_tracer(self: Any, **kwargs: Any) -> Any:
        tracer = get_tracer(self, **kwargs)
        span = _STEPPING_ASIDE.get()
        return tracer if span is None else _InsideServerSpan(tracer, span)

    telemetry.__call__ = __call__
    telemetry._get_tracer = _get_tracer
    _log.info(
        "hooktel: FastAPI's own request spans step aside for the requests hooktel traces; "
        "its operation spans are children of hooktel's SERVER span"
    )


class _InsideServerSpan:
    """FastAPI's tracer for one request hooktel traces: its SERVER span is hooktel's."""

    def __init__(self, tracer: Any, span: Any) -> None:
        self._tracer = tracer
        self._span = span

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if getattr(kwargs.get("kind"), "name", None) == "SERVER":
            return self._span
        return self._tracer.start_span(name, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # start_as_current_span: the operation spans
        return getattr(self._tracer, name)


# ---------------------------------------------------------------- Flask


def _hook_flask(module: ModuleType) -> None:
    _patch(module.Flask, "__call__", _wsgi_entry)


def _note_flask_routes(module: ModuleType) -> None:
    """Flask drops the request from the environ before the response is sent: note the
    matched rule where the hook point looks, as soon as the request is matched."""
    context = module.RequestContext
    original = context.match_request

    def match_request(self: Any) -> None:
        original(self)
        environ = self.request.environ
        if OPERATION_KEY in environ:
            rule = getattr(getattr(self.request, "url_rule", None), "rule", None)
            if isinstance(rule, str):
                environ[ROUTE_KEY] = rule

    context.match_request = match_request


def _note_flask_exceptions(module: ModuleType) -> None:
    module.got_request_exception.connect(_flask_exception, weak=False)


def _flask_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    """Flask turns the exception into a 500 itself; keep it for the error report."""
    request = importlib.import_module("flask").request
    request.environ[EXCEPTION_KEY] = exception


# ---------------------------------------------------------------- Django


def _hook_django_wsgi(module: ModuleType) -> None:
    _patch(module.WSGIHandler, "__call__", _wsgi_entry)


def _hook_django_asgi(module: ModuleType) -> None:
    _patch(module.ASGIHandler, "__call__", _asgi_entry)


def _note_django_routes(module: ModuleType) -> None:
    handler = module.BaseHandler
    original = handler.resolve_request

    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        route = getattr(match, "route", None)
        carrier = _django_carrier(request)
        if isinstance(route, str) and carrier is not None:
            carrier[ROUTE_KEY] = route
        return match

    handler.resolve_request = resolve_request


def _note_django_exceptions(module: ModuleType) -> None:
    module.got_request_exception.connect(_django_exception, weak=False, dispatch_uid="hooktel")


def _django_exception(sender: Any, request: Any = None, **extra: Any) -> None:
    """Django turns the exception into a 500 itself; keep it for the error report."""
    carrier = _django_carrier(request)
    exception = sys.exc_info()[1]
    if carrier is not None and exception is not None:
        carrier[EXCEPTION_KEY] = exception


def _django_carrier(request: Any) -> dict[str, Any] | None:
    """The scope or environ of a request a hook point reports, else None."""
    carrier = getattr(request, "scope", None) or getattr(request, "environ", None)
    return carrier if isinstance(carrier, dict) and OPERATION_KEY in carrier else None


_HOOK_POINTS: tuple[Patcher, ...] = (
    _hook_starlette,
    _hook_fastapi,
    _hook_flask,
    _hook_django_wsgi,
    _hook_django_asgi,
)
