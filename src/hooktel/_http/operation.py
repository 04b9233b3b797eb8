"""One request's lifecycle: the contract every hook point reports through.

An `HttpOperation` is started by `begin_http` (`request`) and then told of the
response's start, an inject, and exactly one end or error; `RequestBody` stands
in for a request body stream so that an app error caused by reading it is
reported as what it was.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .._registry.hooks import Hooks
from .._registry.instrument import Attributes
from .headers import MAX_MESSAGE, MAX_STACKTRACE, cap

CLIENT_DISCONNECTED = "ClientDisconnected"
PARSE_ERROR = "ParseError"

HeaderPairs = Sequence[tuple[str, str]]
"""(lowercase name, value) pairs, in the order they arrived."""


class HttpOperation:
    """One request's telemetry state; the only place its lifecycle is enforced."""

    __slots__ = (
        "_began",
        "_injected",
        "body_size",
        "done",
        "hooks",
        "id",
        "read_error",
        "response_headers",
        "route",
        "status_code",
    )

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self.id = hooks.generate_id()
        self._began = time.monotonic_ns()
        self._injected = False
        self.done = False
        self.status_code = 0
        self.body_size = 0
        self.route: str | None = None
        self.response_headers: dict[str, tuple[str, ...]] | None = None
        self.read_error: BaseException | None = None  # what reading the request body raised

    def inject(self) -> dict[str, str]:
        """Headers to add to the response; asks the instruments once, then never again."""
        if self._injected or self.done:
            return {}
        self._injected = True
        return self.hooks.notify_inject(self.id)

    def respond(self, status_code: int, headers: HeaderPairs) -> None:
        """Record the response status and the captured response headers."""
        self.status_code = status_code
        if self.hooks.response_capture:
            self.response_headers = self.hooks.response_capture.collect(headers)

    def end(self) -> None:
        attrs = self._close(self.hooks.end_hooks)
        if attrs is not None:
            attrs["http.response.body.size"] = self.body_size
            if self.response_headers:
                attrs.update(self.response_headers)
            self.hooks.notify_end(self.id, attrs)

    def fail(self, error_type: str, message: str, exc: BaseException | None = None) -> None:
        attrs = self._close(self.hooks.error_hooks)
        if attrs is not None:
            attrs["error.type"] = error_type
            attrs["error.message"] = cap(message, MAX_MESSAGE)
            if exc is not None:
                stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                attrs["exception.stacktrace"] = stack[-MAX_STACKTRACE:]
            self.hooks.notify_error(self.id, attrs)

    def _close(self, hooks: tuple[Any, ...]) -> Attributes | None:
        """Close the operation: the attributes end and error share, for `hooks` to get;
        None when it was already closed, or when no instrument has such a hook."""
        if self.done:
            return None
        self.done = True
        if not hooks:
            return None
        attrs: Attributes = {
            "operation.id": self.id,
            "operation.duration": time.monotonic_ns() - self._began,
        }
        if self.status_code:
            attrs["http.response.status_code"] = self.status_code
        if self.route:
            attrs["http.route"] = self.route
        return attrs

    def complete(self, handled: object = None) -> None:
        """End; or, when the framework turned exception `handled` into a 5xx, fail with it."""
        if isinstance(handled, BaseException) and self.status_code >= 500:
            self.fail_with(handled)
        else:
            self.end()

    def fail_with(self, exc: BaseException, client_gone: bool = False) -> None:
        """Report `exc`, by the one table of error types every server shares.

        `ClientDisconnected` when it came from writing to a gone client, or from
        (or because of) reading the request body from one; `ParseError` when the
        server rejected the body as malformed; else the exception's class name.
        """
        if client_gone:
            error_type = CLIENT_DISCONNECTED
        elif self.read_error is not None and _caused_by(exc, self.read_error):
            error_type = _body_error_type(self.read_error)
        else:
            error_type = type(exc).__qualname__
        self.fail(error_type, str(exc) or type(exc).__name__, exc)


def _caused_by(exc: BaseException, cause: BaseException) -> bool:
    """True when `exc` is `cause`, or was raised from or while handling it (10 links deep)."""
    link: BaseException | None = exc
    for _ in range(10):
        if link is None:
            return False
        if link is cause:
            return True
        link = link.__cause__ or link.__context__
    return False


def _body_error_type(exc: BaseException) -> str:
    """What reading the request body raising `exc` says about the request."""
    if isinstance(exc, OSError):  # the connection failed: the client went away
        return CLIENT_DISCONNECTED
    if isinstance(exc, (TypeError, ValueError)):  # the app called read() wrongly
        return type(exc).__qualname__
    return PARSE_ERROR  # the server's own complaint: a malformed body (a bad chunk size, ...)


class RequestBody:
    """Stands in for a request body stream (`wsgi.input`, `http.server`'s `rfile`).

    Notes what a read raises on the operation, so that an app error caused by
    it is reported as the client going away or as a malformed body.
    """

    __slots__ = ("_op", "_stream")

    def __init__(self, stream: Any, op: HttpOperation) -> None:
        self._stream = stream
        self._op = op

    def read(self, *args: Any) -> Any:
        return self._noting(self._stream.read, args)

    def readline(self, *args: Any) -> Any:
        return self._noting(self._stream.readline, args)

    def readlines(self, *args: Any) -> Any:
        return self._noting(self._stream.readlines, args)

    def _noting(self, read: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return read(*args)
        except Exception as exc:
            self._op.read_error = exc
            raise

    def __iter__(self) -> RequestBody:
        return self

    def __next__(self) -> Any:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
