"""`HttpInstrumentation.instrument()` options, resolved once, with their environment fallbacks.

The environment variables are the ones the contrib instrumentations read, so a
service moving to hooktel keeps its configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._headers import is_token

ResponsePropagation = Literal["traceparent", "traceresponse", "server-timing"] | None
SpanHook = Callable[[Any, dict[str, Any]], None]

ENV_CAPTURE_REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
ENV_CAPTURE_RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
ENV_SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
ENV_EXCLUDED = ("OTEL_PYTHON_HOOKTEL_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
PROPAGATION_MODES = ("traceparent", "traceresponse", "server-timing", None)


@dataclass(frozen=True)
class Config:
    capture_request_headers: tuple[str, ...]
    capture_response_headers: tuple[str, ...]
    sanitize: re.Pattern[str] | None
    excluded_urls: re.Pattern[str] | None
    response_propagation: ResponsePropagation
    request_hook: SpanHook | None
    response_hook: SpanHook | None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Config:
        propagation = kwargs.get("response_propagation", "traceparent")
        if propagation not in PROPAGATION_MODES:
            raise ValueError(
                f"response_propagation must be one of {PROPAGATION_MODES}, not {propagation!r}"
            )
        for hook in ("request_hook", "response_hook"):
            if kwargs.get(hook) is not None and not callable(kwargs[hook]):
                raise TypeError(f"{hook} must be callable")
        excluded = kwargs.get("excluded_urls")
        if excluded is None:
            excluded = next((os.environ[n] for n in ENV_EXCLUDED if os.environ.get(n)), "")
        return cls(
            capture_request_headers=_names(
                kwargs.get("capture_request_headers"), ENV_CAPTURE_REQUEST
            ),
            capture_response_headers=_names(
                kwargs.get("capture_response_headers"), ENV_CAPTURE_RESPONSE
            ),
            sanitize=_patterns(_split(os.environ.get(ENV_SANITIZE, "")), re.IGNORECASE),
            excluded_urls=_patterns(_split(excluded)),
            response_propagation=propagation,
            request_hook=kwargs.get("request_hook"),
            response_hook=kwargs.get("response_hook"),
        )


def _split(text: str | Iterable[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text
    return [item.strip() for item in items if item.strip()]


def _names(given: Sequence[str] | str | None, env: str) -> tuple[str, ...]:
    """Header names from the option, else the environment; non-names are ignored."""
    names = _split(given if given is not None else os.environ.get(env, ""))
    return tuple(dict.fromkeys(name.lower() for name in names if is_token(name)))


def _patterns(items: list[str], flags: int = 0) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{item})" for item in items), flags) if items else None
