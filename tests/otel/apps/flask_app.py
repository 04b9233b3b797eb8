"""A Flask app with no instrumentation of its own: `gunicorn tests.otel.apps.flask_app:app`."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, jsonify, request

from tests.otel.apps import harness

flask_app = Flask(__name__)


@flask_app.get("/items/<item_id>")
def item(item_id: str) -> Response:
    response = jsonify(harness.child_span("sync"))
    response.headers.extend(harness.RESPONSE_HEADERS)
    return response


@flask_app.get("/status/<int:code>")
def status(code: int) -> Response:
    return Response(b"status", status=code)


@flask_app.get("/boom")
def boom() -> Response:
    harness.boom()
    raise AssertionError("unreachable")


@flask_app.get("/stream")
def stream() -> Response:
    n, interval, tail = harness.stream_params(dict(request.args))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            if i:
                time.sleep(interval)
            yield harness.chunk(i)
        time.sleep(tail)

    return Response(chunks(), mimetype="text/plain")


@flask_app.get("/health")
def health() -> Response:
    return jsonify(harness.child_span("health"))


@flask_app.route("/anything", methods=["GET", "PURGE"])
def anything() -> Response:
    return Response(request.method.encode())


api = Blueprint("api", __name__)


@api.get("/items/<item_id>")
def api_item(item_id: str) -> Response:
    return item(item_id)


flask_app.register_blueprint(api, url_prefix="/api")
app = harness.wsgi_control(flask_app)
