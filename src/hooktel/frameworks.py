"""Hook points in the frameworks people run, so no app has to be wrapped by hand.

`instrument()` routes every Starlette/FastAPI, Flask and Django app through
`hooktel.asgi` / `hooktel.wsgi` `TelemetryMiddleware`, and lets Django report
its matched route. Frameworks that are not installed are skipped, and a
framework is only imported here if it is installed. An app that is also
wrapped by hand reports once: the outermost middleware wins.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from . import asgi, wsgi
from ._http import EXCEPTION_KEY, ROUTE_KEY

_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, original), to undo


def instrument() -> None:
    """Install the framework hook points; calling it again does nothing."""
    if _patches:
        return
    for module, patcher in (
        ("starlette.applications", _patch_starlette),
        ("flask.app", _patch_flask),
        ("django.core.handlers.base", _patch_django),
    ):
        if importlib.util.find_spec(module.partition(".")[0]) is not None:
            patcher(importlib.import_module(module))


def uninstrument() -> None:
    """Remove every framework hook point `instrument()` installed."""
    while _patches:
        owner, attribute, original = _patches.pop()
        if attribute == "disconnect":  # a signal receiver, not a patched attribute
            owner.disconnect(original)
        else:
            setattr(owner, attribute, original)


def _patch(owner: Any, attribute: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, attribute)
    _patches.append((owner, attribute, original))
    setattr(owner, attribute, make(original))


def _patch_starlette(module: Any) -> None:
    # __call__, not build_middleware_stack: FastAPI overrides the latter, and its
    # __call__ ends in Starlette's.
    def make(original: Any) -> Any:
        async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
            await _cached(self, asgi.TelemetryMiddleware, original)(scope, receive, send)

        return __call__

    _patch(module.Starlette, "__call__", make)
    # Starlette answers an exception with a 500 and re-raises it only after the
    # response is out: note it on the way, inside its ServerErrorMiddleware.
    errors = importlib.import_module("starlette.middleware.errors").ServerErrorMiddleware
    _patch(errors, "__init__", _make_error_middleware_init)


def _make_error_middleware_init(original: Any) -> Any:
    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, _NoteException(app), *args, **kwargs)

    return __init__


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


def _cached(app: Any, wrap: Callable[[Any], Any], original: Any) -> Any:
    """The app's own wrapped entry point, made on its first request."""
    wrapped = app.__dict__.get("_hooktel_entry")
    if wrapped is None:
        wrapped = app.__dict__["_hooktel_entry"] = wrap(partial(original, app))
    return wrapped


def _patch_flask(module: Any) -> None:
    def make(original: Any) -> Any:
        def __call__(self: Any, environ: Any, start_response: Any) -> Any:
            return _cached(self, wsgi.TelemetryMiddleware, original)(environ, start_response)

        return __call__

    _patch(module.Flask, "__call__", make)
    # Flask drops the request from the environ before the response is sent: note the
    # matched rule where the hook point looks, as soon as the request is matched.
    context = importlib.import_module("flask.ctx").RequestContext
    if hasattr(context, "match_request"):
        _patch(context, "match_request", _make_flask_match)
    signal = importlib.import_module("flask.signals").got_request_exception
    signal.connect(_flask_exception, weak=False)
    _patches.append((signal, "disconnect", _flask_exception))


def _make_flask_match(original: Any) -> Any:
    def match_request(self: Any) -> None:
        original(self)
        rule = getattr(getattr(self.request, "url_rule", None), "rule", None)
        if isinstance(rule, str):
            self.request.environ[ROUTE_KEY] = rule

    return match_request


def _flask_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    """Flask turns the exception into a 500 itself; keep it for the error report."""
    request = importlib.import_module("flask").request
    request.environ[EXCEPTION_KEY] = exception


def _django_exception(sender: Any, request: Any = None, **extra: Any) -> None:
    """Django turns the exception into a 500 itself; keep it for the error report."""
    carrier = getattr(request, "scope", None) or getattr(request, "environ", None)
    exception = sys.exc_info()[1]
    if isinstance(carrier, dict) and exception is not None:
        carrier[EXCEPTION_KEY] = exception


def _patch_django(base: Any) -> None:
    wsgi_handler = importlib.import_module("django.core.handlers.wsgi").WSGIHandler
    asgi_handler = importlib.import_module("django.core.handlers.asgi").ASGIHandler

    def make_wsgi(original: Any) -> Any:
        def __call__(self: Any, environ: Any, start_response: Any) -> Any:
            return _cached(self, wsgi.TelemetryMiddleware, original)(environ, start_response)

        return __call__

    def make_asgi(original: Any) -> Any:
        async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
            await _cached(self, asgi.TelemetryMiddleware, original)(scope, receive, send)

        return __call__

    def make_resolve(original: Any) -> Any:
        def resolve_request(self: Any, request: Any) -> Any:
            match = original(self, request)
            route = getattr(match, "route", None)
            carrier = getattr(request, "scope", None) or getattr(request, "environ", None)
            if isinstance(route, str) and isinstance(carrier, dict):
                carrier[ROUTE_KEY] = route
            return match

        return resolve_request

    _patch(wsgi_handler, "__call__", make_wsgi)
    _patch(asgi_handler, "__call__", make_asgi)
    _patch(base.BaseHandler, "resolve_request", make_resolve)
    signal = importlib.import_module("django.core.signals").got_request_exception
    signal.connect(_django_exception, weak=False, dispatch_uid="hooktel")
    _patches.append((signal, "disconnect", _django_exception))
