"""A request as the hook points report it: `begin_http` and its start attributes.

A server module translates its own request into `begin_http(...)` arguments
and then reports to the returned `HttpOperation`; the operation enforces the
per-request contract (start, at most one inject, exactly one end or error).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .._registry.hooks import Hooks
from .._registry.instrument import Attributes
from .headers import (
    MAX_HEADER_VALUE,
    MAX_URL,
    cap,
    cgi_key,
    str_and_bytes,
)
from .operation import HttpOperation
from .traceparent import (
    PARENT_SPAN_ID,
    PARENT_TRACE_FLAGS,
    PARENT_TRACE_ID,
    PARENT_TRACE_STATE,
    parse_traceparent,
)

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
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# Keys a framework (or `hooktel.frameworks`) may set in the ASGI scope / WSGI environ.
ROUTE_KEY = "hooktel.route"
"""The matched route template, a str."""
EXCEPTION_KEY = "hooktel.exception"
"""The exception the framework turned into its 5xx response."""
OPERATION_KEY = "hooktel.operation"
"""Set by the outermost hook point, so nested ones report nothing twice."""

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
    operation: type[HttpOperation] = HttpOperation,
    extra: Attributes | None = None,
) -> HttpOperation:
    """Start an operation: build the start attributes and notify the instruments.

    `path` is the request-target without its query, in whichever of RFC 9112's
    four forms it came (origin `/a`, absolute `http://h/a`, authority `h:443`
    for CONNECT, asterisk `*`); `url.full` is the target URI rebuilt by that
    form's rules (RFC 9112 section 3.3). `client` may lack its port (CGI's
    `REMOTE_PORT` is optional). A WebSocket handshake (a GET) starts a
    `WebSocketOperation` through `operation`, with its own start attributes in `extra`.
    """
    op = operation(hooks)
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
    if extra:
        attrs.update(extra)
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
        attrs[PARENT_TRACE_ID] = parent.trace_id
        attrs[PARENT_SPAN_ID] = parent.span_id
        attrs[PARENT_TRACE_FLAGS] = parent.trace_flags
        # Several lines are one list, in order (W3C Trace Context 3.3.1.1). Never cut
        # inside a member: a longer state than any valid one (32 members) is left out.
        trace_state = ",".join(tracestates) if tracestates else ""
        if trace_state and len(trace_state) <= MAX_TRACESTATE:
            attrs[PARENT_TRACE_STATE] = trace_state


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


def header_pairs(raw: Iterable[tuple[Any, Any]]) -> list[tuple[str, str]]:
    """Lowercased `str` pairs from `str` or `bytes` header pairs."""
    return [
        (
            (k.decode("latin-1") if isinstance(k, bytes) else str(k)).lower(),
            v.decode("latin-1") if isinstance(v, bytes) else str(v),
        )
        for k, v in raw
    ]
