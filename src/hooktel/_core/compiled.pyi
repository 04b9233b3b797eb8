# The native hook core (src/hooktel/_core*.c); each name has a Python twin it is tested
# against: hooktel._http, hooktel.asgi and hooktel.wsgi.

from collections.abc import Callable
from typing import Any

from .._http.operation import HttpOperation
from .._http.request import RequestHeaders
from .._registry.hooks import Hooks

def parse_traceparent(value: str, /) -> tuple[str, str, int] | None: ...
def begin_http(
    hooks: Hooks,
    *,
    method: str,
    scheme: str,
    path: str,
    query: str,
    headers: RequestHeaders,
    server: tuple[str, int] | None,
    client: tuple[str, int | None] | None,
    protocol: str,
) -> HttpOperation: ...
def configure(**options: Any) -> None: ...
def serve_websockets(run_websocket: Callable[..., Any], /) -> None: ...
def mark_coroutine_call(cls: type, function: Callable[..., Any], /) -> None: ...

class AsgiMiddleware:
    app: Any
    def __init__(self, app: Any) -> None: ...
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

class WsgiMiddleware:
    app: Any
    def __init__(self, app: Any) -> None: ...
    def __call__(self, environ: Any, start_response: Any) -> Any: ...
