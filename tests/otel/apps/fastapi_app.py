"""A FastAPI app with no instrumentation of its own: `uvicorn tests.otel.apps.fastapi_app:app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from tests.otel.apps import harness

fastapi_app = FastAPI()


@fastapi_app.get("/items/{item_id}")
async def item(item_id: str) -> JSONResponse:
    return JSONResponse(harness.child_span("async"), headers=dict(harness.RESPONSE_HEADERS))


@fastapi_app.get("/sync/{item_id}")
def sync_item(item_id: str) -> JSONResponse:  # FastAPI runs it in a thread
    return JSONResponse(harness.child_span("sync"), headers=dict(harness.RESPONSE_HEADERS))


@fastapi_app.get("/status/{code}")
async def status(code: int) -> Response:
    return Response(b"status", status_code=code)


@fastapi_app.get("/boom")
async def boom() -> Any:
    harness.boom()


@fastapi_app.get("/stream")
async def stream(request: Request) -> StreamingResponse:
    n, interval, tail = harness.stream_params(dict(request.query_params))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            if i:
                await asyncio.sleep(interval)
            yield harness.chunk(i)
        await asyncio.sleep(tail)

    return StreamingResponse(chunks(), media_type="text/plain")


@fastapi_app.get("/health")
async def health() -> JSONResponse:
    return JSONResponse(harness.child_span("health"))


@fastapi_app.api_route("/anything", methods=["GET", "PURGE"])
async def anything(request: Request) -> Response:
    return Response(request.method.encode())


api = APIRouter()


@api.get("/items/{item_id}")
async def api_item(item_id: str) -> JSONResponse:
    return JSONResponse(harness.child_span("async"), headers=dict(harness.RESPONSE_HEADERS))


fastapi_app.include_router(api, prefix="/api")
app = harness.asgi_control(fastapi_app)
