"""What every HTTP server hook point shares: start attributes and the lifecycle.

A server module translates its own request into `begin_http(...)` arguments
and then reports to the returned `HttpOperation`; the operation enforces the
per-request contract (start, at most one inject, exactly one end or error).
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._headers import (
    MAX_HEADER_VALUE,
    MAX_MESSAGE,
    MAX_STACKTRACE,
    MAX_URL,
    cap,
    cgi_key,
    str_and_bytes,
)
from ._instrument import Attributes
from ._registry import Hooks
from ._traceparent import parse_traceparent

KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
MAX_TRACESTATE = 64 * 1024
MAX_HOST = 255
"""The longest `server.address` taken from a request (a DNS name is at most 253)."""
# RFC 3986: reg-name (unreserved, pct-encoded, sub-delims) or IPv4; an IPv6 literal
# (zone id included) in brackets; a URI scheme. ASCII only, on purpose.
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+")
_IPV6_LITERAL = re.compile(r"[A-Za-z0-9\-._~:%]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}
CLIENT_DISCONNECTED = "ClientDisconnected"
PARSE_ERROR = "ParseError"

# Keys a framework (or `hooktel.frameworks`) may set in the ASGI scope / WSGI environ.
ROUTE_KEY = "hooktel.route"
"""The matched route template, a str."""
EXCEPTION_KEY = "hooktel.exception"
"""The exception the framework turned into its 5xx response."""
OPERATION_KEY = "hooktel.operation"
"""Set by the outermost hook point, so nested ones report nothing twice."""

HeaderPairs = Sequence[tuple[str, str]]
"""(lowercase name, value) pairs, in the order they arrived."""
RequestHeaders = Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]]
"""Request header pairs as the server has them: lowercase names, `str` or latin-1 `bytes`.

ASGI servers give bytes; only the headers hooktel reads are decoded.
"""

SCANNED_HEADERS = ("host", "user-agent", "content-length", "traceparent", "tracestate")
"""The request headers `begin_http` reads (besides those the instruments capture)."""
_HOST, _USER_AGENT, _CONTENT_LENGTH, _TRACEPARENT, _TRACESTATE = range(len(SCANNED_HEADERS))
_SCANNED = str_and_bytes({name: which for which, name in enumerate(SCANNED_HEADERS)})
CGI_SCANNED_KEYS = tuple((cgi_key(name), name) for name in SCANNED_HEADERS)
"""Where WSGI servers keep the scanned headers: (CGI environ key, header name)."""


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
) -> HttpOperation:
    """Start an operation: build the start attributes and notify the instruments.

    `path` is the request-target without its query, in whichever of RFC 9112's
    four forms it came (origin `/a`, absolute `http://h/a`, authority `h:443`
    for CONNECT, asterisk `*`); `url.full` is the target URI rebuilt by that
    form's rules (RFC 9112 section 3.3). `client` may lack its port (CGI's
    `REMOTE_PORT` is optional).
    """
    op = HttpOperation(hooks)
    if not hooks.start_hooks:  # attributes only for an instrument that reads them
        return op
    known = method in KNOWN_METHODS
    attrs: Attributes = {  # one dict display: cheaper than a store per key
        "operation.id": op.id,
        "operation.timestamp": time.time_ns(),
        "http.request.method": method if known else "_OTHER",
        "url.scheme": scheme,
    }
    if not known and method:
        attrs["http.request.method_original"] = cap(method, MAX_HEADER_VALUE)
    if query:
        attrs["url.query"] = query if len(query) <= MAX_URL else query[:MAX_URL]

    host, traceparent, tracestates = _scan_headers(headers, attrs)
    url_path, uri_path, uri_scheme, authority = (
        (path, path, scheme, host)
        if path.startswith("/")
        else _other_form(path, method, scheme, host)
    )
    attrs["url.path"] = url_path if len(url_path) <= MAX_URL else url_path[:MAX_URL]
    address = _split_host(authority, uri_scheme) if authority else None
    if address is None:  # no Host, or not a valid one: the listening socket stands in
        authority, address = _authority(server), server
    if address is not None:
        attrs["server.address"], attrs["server.port"] = address
    uri = f"{uri_scheme}://{authority}{uri_path}"
    attrs["url.full"] = cap(f"{uri}?{query}" if query and uri_path else uri, MAX_URL)
    if client is not None:
        attrs["client.address"] = client[0]
        if client[1] is not None:
            attrs["client.port"] = client[1]
    if protocol:
        attrs["network.protocol.version"] = protocol
    if traceparent:
        _add_parent(attrs, traceparent, tracestates)
    if hooks.request_capture:
        attrs.update(hooks.request_capture.collect(headers))
    hooks.notify_start(op.id, attrs)
    return op


def _other_form(
    target: str, method: str, scheme: str, host: str | None
) -> tuple[str, str, str, str | None]:
    """`url.path`, the target URI's path, scheme and authority for the rarer target forms.

    RFC 9112 section 3.2: an absolute-form target (`http://h/a`, sent to proxies)
    brings its own scheme and authority, which override Host; a CONNECT target
    is an authority alone; an asterisk-form target (`OPTIONS *`) and the
    authority-form have an empty path in the target URI (section 3.3).
    """
    scheme_end = target.find("://")
    if scheme_end > 0 and _SCHEME.fullmatch(target, 0, scheme_end):
        authority, slash, rest = target[scheme_end + 3 :].partition("/")
        path = slash + rest or "/"
        return path, path, target[:scheme_end].lower(), authority
    if method == "CONNECT":
        return "", "", scheme, target
    if target == "*":
        return "*", "", scheme, host
    return target, "/" + target, scheme, host  # not a valid target, as the server let it through


def omits_body(method: str, status: int) -> bool:
    """True when RFC 9110 forbids content: answers to HEAD, and 1xx, 204, 304 responses.

    ASGI and WSGI servers (uvicorn, hypercorn, gunicorn) drop what the app
    writes for these, so those bytes are never sent and do not count as sent.
    """
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200


def _scan_headers(
    headers: RequestHeaders, attrs: Attributes
) -> tuple[str | None, str | None, list[str] | None]:
    """One pass over the request headers: attributes, Host and trace context lines.

    The traceparent is None unless exactly one line came (several are invalid);
    the tracestate lines are None when there are none.
    """
    host = None
    traceparent: str | None = None
    traceparents = 0
    tracestates: list[str] | None = None
    scanned = _SCANNED
    for name, raw in headers:
        which = scanned.get(name)
        if which is None:
            continue
        value = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if which == _HOST:
            host = value
        elif which == _USER_AGENT:
            attrs["user_agent.original"] = cap(value, MAX_HEADER_VALUE)
        elif which == _CONTENT_LENGTH:
            if (size := decimal(value)) is not None:
                attrs["http.request.body.size"] = size
        elif which == _TRACEPARENT:
            traceparent = value
            traceparents += 1
        else:
            if tracestates is None:
                tracestates = []
            tracestates.append(value)
    return host, traceparent if traceparents == 1 else None, tracestates


def _add_parent(attrs: Attributes, traceparent: str, tracestates: list[str] | None) -> None:
    parent = parse_traceparent(traceparent)
    if parent is not None:
        attrs["trace.parent.trace_id"] = parent.trace_id
        attrs["trace.parent.span_id"] = parent.span_id
        attrs["trace.parent.trace_flags"] = parent.trace_flags
        # Several lines are one list, in order (W3C Trace Context 3.3.1.1). Never cut
        # inside a member: a longer state than any valid one (32 members) is left out.
        trace_state = ",".join(tracestates) if tracestates else ""
        if trace_state and len(trace_state) <= MAX_TRACESTATE:
            attrs["trace.parent.trace_state"] = trace_state


def _split_host(host: str, scheme: str) -> tuple[str, int] | None:
    """`(address, port)` from a `host[:port]` authority, IPv6 literals included.

    None when it is not one: a reg-name or IPv4 address of RFC 3986 characters
    (no `/ ? # @`, no spaces), at most `MAX_HOST` long, an IPv6 literal in
    brackets, and a port from 1 to 65535. The scheme's default port stands in
    for a missing one.
    """
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        address, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
        valid = _IPV6_LITERAL.fullmatch(address) is not None and ":" in address
    else:
        address, _, port_text = host.partition(":")
        valid = _REG_NAME.fullmatch(address) is not None
    if not valid or len(address) > MAX_HOST:
        return None
    if not port_text:
        port = _DEFAULT_PORTS.get(scheme)
        return (address, port) if port is not None else None
    port = decimal(port_text)
    if port is None or not 0 < port < 65536:
        return None
    return address, port


def decimal(text: str) -> int | None:
    """The number written in ASCII digits, else None (`str.isdigit` alone accepts '²')."""
    return int(text) if text.isascii() and text.isdigit() else None


def _authority(server: tuple[str, int] | None) -> str:
    if server is None:
        return "localhost"
    address, port = server
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


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


def header_pairs(raw: Iterable[tuple[Any, Any]]) -> list[tuple[str, str]]:
    """Lowercased `str` pairs from `str` or `bytes` header pairs."""
    return [
        (
            (k.decode("latin-1") if isinstance(k, bytes) else str(k)).lower(),
            v.decode("latin-1") if isinstance(v, bytes) else str(v),
        )
        for k, v in raw
    ]
