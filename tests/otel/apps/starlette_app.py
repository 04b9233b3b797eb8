"""A Starlette app, no instrumentation of its own: `uvicorn tests.otel.apps.starlette_app:app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from tests.otel.apps import harness


async def item(request: Request) -> JSONResponse:
    return JSONResponse(harness.child_span("async"), headers=dict(harness.RESPONSE_HEADERS))


def sync_item(request: Request) -> JSONResponse:  # Starlette runs it in a thread
    return JSONResponse(harness.child_span("sync"), headers=dict(harness.RESPONSE_HEADERS))


async def status(request: Request) -> Response:
    return Response(b"status", status_code=int(request.path_params["code"]))


async def boom(request: Request) -> Response:
    harness.boom()
    raise AssertionError("unreachable")


async def stream(request: Request) -> StreamingResponse:
    n, interval, tail = harness.stream_params(dict(request.query_params))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            if i:
                await asyncio.sleep(interval)
            yield harness.chunk(i)
        await asyncio.sleep(tail)

    return StreamingResponse(chunks(), media_type="text/plain")


async def health(request: Request) -> JSONResponse:
    return JSONResponse(harness.child_span("health"))


async def anything(request: Request) -> Response:
    return Response(request.method.encode())


starlette_app = Starlette(
    routes=[
        Route("/items/{item_id}", item),
        Route("/sync/{item_id}", sync_item),
        Route("/status/{code:int}", status),
        Route("/boom", boom),
        Route("/stream", stream),
        Route("/health", health),
        Route("/anything", anything, methods=["GET", "PURGE"]),
        Mount("/api", routes=[Route("/items/{item_id}", item)]),
    ]
)
app = harness.asgi_control(starlette_app)
