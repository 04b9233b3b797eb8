"""A Django project in one module, with no instrumentation of its own.

`uvicorn tests.otel.apps.django_app:asgi_app` or
`gunicorn tests.otel.apps.django_app:wsgi_app`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="hooktel-tests-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.handlers.asgi import ASGIRequest  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import include, path  # noqa: E402

from tests.otel.apps import harness  # noqa: E402


def _with_headers(response: HttpResponse) -> HttpResponse:
    for name, value in harness.RESPONSE_HEADERS:
        response[name] = value
    return response


def item(request: HttpRequest, item_id: str) -> HttpResponse:
    return _with_headers(JsonResponse(harness.child_span("sync")))


async def async_item(request: HttpRequest, item_id: str) -> HttpResponse:
    return _with_headers(JsonResponse(harness.child_span("async")))


def status(request: HttpRequest, code: int) -> HttpResponse:
    return HttpResponse(b"status", status=code)


def boom(request: HttpRequest) -> HttpResponse:
    harness.boom()
    raise AssertionError("unreachable")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Sync chunks under WSGI; async ones under ASGI, where Django would read a sync
    iterator to its end before sending anything."""
    n, interval, tail = harness.stream_params(dict(request.GET.items()))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            if i:
                time.sleep(interval)
            yield harness.chunk(i)
        time.sleep(tail)

    async def async_chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            if i:
                await asyncio.sleep(interval)
            yield harness.chunk(i)
        await asyncio.sleep(tail)

    content = async_chunks() if isinstance(request, ASGIRequest) else chunks()
    return StreamingHttpResponse(content, content_type="text/plain")


def health(request: HttpRequest) -> HttpResponse:
    return JsonResponse(harness.child_span("health"))


def anything(request: HttpRequest) -> HttpResponse:
    return HttpResponse((request.method or "").encode())


urlpatterns = [
    path("items/<str:item_id>", item),
    path("async/<str:item_id>", async_item),
    path("status/<int:code>", status),
    path("boom", boom),
    path("stream", stream),
    path("health", health),
    path("anything", anything),
    path("api/", include([path("items/<str:item_id>", item)])),
]

asgi_app = harness.asgi_control(get_asgi_application())
wsgi_app = harness.wsgi_control(get_wsgi_application())
