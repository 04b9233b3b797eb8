"""`hooktel.frameworks` patches a framework when it is imported, and imports none itself.

Each test runs in a fresh interpreter: what is imported, and when, is the point.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("starlette", "fastapi", "flask", "werkzeug", "django")


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_instrument_imports_no_framework() -> None:
    out = _run(
        """
        import json, sys
        import hooktel.frameworks, hooktel.asgi, hooktel.wsgi
        hooktel.frameworks.instrument()
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
        """
    )
    loaded = set(json.loads(out))
    assert not loaded & set(FRAMEWORKS), loaded & set(FRAMEWORKS)


def test_a_framework_imported_after_instrument_is_patched_on_import() -> None:
    out = _run(
        """
        import json
        import hooktel.frameworks
        hooktel.frameworks.instrument()
        from starlette.applications import Starlette
        from starlette.middleware.errors import ServerErrorMiddleware
        from starlette.routing import Route
        from flask import Flask
        from flask.ctx import RequestContext
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.handlers.base import BaseHandler
        print(json.dumps([
            f"{c.__module__}.{c.__qualname__}.{a}: {getattr(c, a).__module__}"
            for c, a in [
                (Starlette, "__call__"), (ServerErrorMiddleware, "__call__"), (Route, "handle"),
                (Flask, "__call__"), (RequestContext, "match_request"),
                (WSGIHandler, "__call__"), (BaseHandler, "resolve_request"),
            ]
        ]))
        """
    )
    for line in json.loads(out):
        assert line.endswith(": hooktel.frameworks"), line


def test_a_framework_imported_before_instrument_is_patched_at_once() -> None:
    out = _run(
        """
        from starlette.applications import Starlette
        import hooktel.frameworks
        before = Starlette.__call__
        hooktel.frameworks.instrument()
        print(Starlette.__call__ is not before, Starlette.__call__.__module__)
        hooktel.frameworks.uninstrument()
        print(Starlette.__call__ is before)
        """
    )
    assert out.split() == ["True", "hooktel.frameworks", "True"]


def test_uninstrument_before_the_import_leaves_the_framework_alone() -> None:
    out = _run(
        """
        import hooktel.frameworks
        hooktel.frameworks.instrument()
        hooktel.frameworks.uninstrument()
        from starlette.applications import Starlette
        print(Starlette.__call__.__module__)
        """
    )
    assert out.strip() == "starlette.applications"


def test_importing_a_hook_point_installs_the_notes_only() -> None:
    """An app wrapped by hand gets routes and exceptions; nothing is wrapped for it."""
    out = _run(
        """
        import hooktel.asgi
        from starlette.applications import Starlette
        from starlette.routing import Route
        from starlette.middleware.errors import ServerErrorMiddleware
        print(Starlette.__call__.__module__, Route.handle.__module__,
              ServerErrorMiddleware.__call__.__module__)
        """
    )
    assert out.split() == ["starlette.applications", "hooktel.frameworks", "hooktel.frameworks"]


def test_a_patch_that_fails_is_logged_and_the_import_goes_on() -> None:
    out = _run(
        """
        import logging, sys
        logging.basicConfig(stream=sys.stdout, format="%(name)s %(message)s")
        from hooktel import _importhook
        def broken(module):
            raise AttributeError("no such thing")
        _importhook.when_imported("colorsys", broken)
        import colorsys
        print("imported", colorsys.rgb_to_hsv(1, 0, 0))
        """
    )
    assert "hooktel hooktel: could not patch colorsys (AttributeError: no such thing)" in out
    assert "imported (0.0, 1.0, 1" in out


def test_a_flask_app_wrapped_by_hand_reports_its_route_and_exception() -> None:
    """No `frameworks.instrument()`: importing `hooktel.wsgi` is what lets Flask tell them."""
    out = _run(
        """
        import json, threading, urllib.error, urllib.request
        from wsgiref.simple_server import WSGIRequestHandler, make_server
        from flask import Flask
        import hooktel
        from hooktel.wsgi import TelemetryMiddleware

        flask_app = Flask("demo")
        flask_app.get("/items/<item_id>")(lambda item_id: item_id)

        @flask_app.get("/boom")
        def boom():
            raise RuntimeError("kaput")

        seen = []
        hooktel.attach(hooktel.Instrument(
            "http", "recorder", "1.0",
            on_operation_end=lambda op, attrs: seen.append(dict(attrs)),
            on_operation_error=lambda op, attrs: seen.append(dict(attrs)),
        ))
        class Quiet(WSGIRequestHandler):
            def log_message(self, *args): pass
        server = make_server("127.0.0.1", 0, TelemetryMiddleware(flask_app), handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        urllib.request.urlopen(base + "/items/7").read()
        try:
            urllib.request.urlopen(base + "/boom")
        except urllib.error.HTTPError as error:
            error.read()
        server.shutdown()
        print(json.dumps([(a.get("http.route"), a.get("error.type")) for a in seen]))
        """
    )
    assert json.loads(out) == [["/items/<item_id>", None], ["/boom", "RuntimeError"]]
