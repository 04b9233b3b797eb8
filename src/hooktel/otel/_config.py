"""`HttpInstrumentation.instrument()` options, resolved once, with their environment fallbacks.

The environment variables are the ones the contrib instrumentations read, so a
service moving to hooktel keeps its configuration. So are contrib's option
names: those hooktel can honour work (`http_capture_headers_*`,
`exclude_spans`); each one it cannot gets one warning naming it, never silence.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._http.headers import is_token

ResponsePropagation = Literal["traceparent", "traceresponse", "server-timing"] | None
SpanHook = Callable[[Any, dict[str, Any]], None]

ENV_CAPTURE_REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
ENV_CAPTURE_RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
ENV_SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
ENV_EXCLUDED = ("OTEL_PYTHON_HOOKTEL_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
ENV_SEMCONV = "OTEL_SEMCONV_STABILITY_OPT_IN"
PROPAGATION_MODES = ("traceparent", "traceresponse", "server-timing", None)

_log = logging.getLogger("hooktel")

OPTIONS = frozenset(
    {
        "tracer_provider",
        "meter_provider",  # and opt_in_metrics: read by `metrics.instrument`
        "opt_in_metrics",
        "capture_request_headers",
        "capture_response_headers",
        "excluded_urls",
        "response_propagation",
        "request_hook",
        "response_hook",
        "websocket_message_spans",
    }
)
CONTRIB_ALIASES = {
    "http_capture_headers_server_request": "capture_request_headers",
    "http_capture_headers_server_response": "capture_response_headers",
    "http_capture_headers_sanitize_fields": "sanitize_fields",
}
"""Contrib's option names that mean what a hooktel option (or its environment variable) does."""
IGNORED = {
    "server_request_hook": "hooktel calls request_hook(span, attributes), not a hook of "
    "the ASGI scope or WSGI environ; use request_hook",
    "client_request_hook": "hooktel makes no internal 'http receive' spans",
    "client_response_hook": "hooktel makes no internal 'http send' spans",
    "meter": "pass meter_provider instead",
    "tracer": "pass tracer_provider instead",
    "default_span_details": "hooktel names spans '{method} {http.route}' itself",
}
"""Contrib options hooktel cannot honour, and why: each gets one warning naming it."""
_INTERNAL_SPANS = frozenset({"receive", "send"})
_PATTERN = re.compile(r"[*+?^$|()\[\]{}\\]")


@dataclass(frozen=True)
class Config:
    capture_request_headers: tuple[str, ...]
    capture_response_headers: tuple[str, ...]
    sanitize: re.Pattern[str] | None
    excluded_urls: re.Pattern[str] | None
    response_propagation: ResponsePropagation
    request_hook: SpanHook | None
    response_hook: SpanHook | None
    old_names: bool
    """`OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`: the pre-1.21 attribute names as well."""
    websocket_message_spans: bool = False
    """A span per WebSocket message, under its connection's: only when asked (they are many)."""

    @classmethod
    def from_kwargs(cls, given: dict[str, Any]) -> Config:
        kwargs = _options(given)
        propagation = kwargs.get("response_propagation", "traceparent")
        if propagation not in PROPAGATION_MODES:
            raise ValueError(
                f"response_propagation must be one of {PROPAGATION_MODES}, not {propagation!r}"
            )
        for hook in ("request_hook", "response_hook"):
            if kwargs.get(hook) is not None and not callable(kwargs[hook]):
                raise TypeError(f"{hook} must be callable")
        message_spans = kwargs.get("websocket_message_spans", False)
        if not isinstance(message_spans, bool):
            raise TypeError("websocket_message_spans must be a bool")
        excluded = kwargs.get("excluded_urls")
        if excluded is None:
            excluded = next((os.environ[n] for n in ENV_EXCLUDED if os.environ.get(n)), "")
        sanitize = kwargs.get("sanitize_fields")
        return cls(
            capture_request_headers=_names(kwargs, "capture_request_headers", ENV_CAPTURE_REQUEST),
            capture_response_headers=_names(
                kwargs, "capture_response_headers", ENV_CAPTURE_RESPONSE
            ),
            sanitize=_patterns(
                _split(sanitize if sanitize is not None else os.environ.get(ENV_SANITIZE, "")),
                re.IGNORECASE,
            ),
            excluded_urls=_patterns(_split(excluded)),
            response_propagation=propagation,
            request_hook=kwargs.get("request_hook"),
            response_hook=kwargs.get("response_hook"),
            old_names="http/dup" in _split(os.environ.get(ENV_SEMCONV, "")),
            websocket_message_spans=message_spans,
        )


def _options(given: dict[str, Any]) -> dict[str, Any]:
    """The options hooktel honours, contrib's names translated; a warning for each other one."""
    kwargs: dict[str, Any] = {}
    for name, value in given.items():
        if name in OPTIONS:
            kwargs[name] = value
        elif name in CONTRIB_ALIASES:
            own = CONTRIB_ALIASES[name]
            if own in given:
                raise TypeError(f"give {own} or {name}, not both")
            kwargs[own] = value
        elif name == "exclude_spans":
            unknown = sorted(set(value or ()) - _INTERNAL_SPANS)
            if unknown:
                _log.warning(
                    "hooktel.otel: exclude_spans %r ignored: only 'receive' and 'send' exist",
                    unknown,
                )
            # 'receive' and 'send': hooktel never makes those internal spans.
        elif name in IGNORED:
            _log.warning("hooktel.otel: option %s ignored: %s", name, IGNORED[name])
        else:
            _log.warning("hooktel.otel: unknown option %s ignored", name)
    return kwargs


def _split(text: str | Iterable[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text
    return [item.strip() for item in items if item.strip()]


def _names(kwargs: dict[str, Any], option: str, env: str) -> tuple[str, ...]:
    """Header names from the option, else the environment; a warning for each non-name.

    Contrib reads each entry as a regular expression; hooktel's hook points
    capture exact names, so an entry such as `x-.*` is not a name it can capture.
    """
    given: Sequence[str] | str | None = kwargs.get(option)
    source = option if given is not None else env
    names = []
    for name in _split(given if given is not None else os.environ.get(env, "")):
        if is_token(name) and _PATTERN.search(name) is None:
            names.append(name.lower())
        else:
            _log.warning(
                "hooktel.otel: header capture entry %r (%s) ignored: hooktel captures exact "
                "header names, not patterns",
                name,
                source,
            )
    return tuple(dict.fromkeys(names))


def _patterns(items: list[str], flags: int = 0) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{item})" for item in items), flags) if items else None
