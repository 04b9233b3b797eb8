"""Header names and values: token syntax, redaction of secrets, size caps."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

MAX_HEADER_VALUE = 8 * 1024
MAX_URL = 64 * 1024
MAX_MESSAGE = 4 * 1024
MAX_STACKTRACE = 16 * 1024
REDACTED = "REDACTED"
REQUEST_HEADER_PREFIX = "http.request.header."
"""Captured request headers are attributes named this plus the lowercase header name."""
RESPONSE_HEADER_PREFIX = "http.response.header."
T = TypeVar("T")

# RFC 9110 section 5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAK = re.compile(r"[\r\n]+[ \t]*")
_SENSITIVE_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SENSITIVE_PARTS = ("api-key", "token", "session", "secret", "password", "csrf")


def is_token(name: str) -> bool:
    """True when `name` is a valid HTTP field name."""
    if name.isascii() and name.replace("-", "").isalnum():  # the usual names, without a regex
        return True
    return _TOKEN.fullmatch(name) is not None


def is_sensitive(name: str) -> bool:
    """True for headers whose values are never reported, whoever asks to capture them.

    `_` counts as `-`: CGI (and so every WSGI server) keeps `x-api_key` and
    `X-Api-Key` under one environ key, and a client may spell either.
    """
    name = name.lower().replace("_", "-")
    return name in _SENSITIVE_NAMES or any(part in name for part in _SENSITIVE_PARTS)


def unfold(value: str) -> str:
    """`value` with each line break (and the folding whitespace after it) as one space.

    RFC 9112 section 5.2: a recipient replaces each obsolete line folding with
    spaces; no reported value may carry CR or LF.
    """
    if "\n" not in value and "\r" not in value:
        return value
    return _LINE_BREAK.sub(" ", value)


def cgi_key(name: str) -> str:
    """Where CGI (PEP 3333's environ) keeps request header `name`."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def str_and_bytes(by_name: Mapping[str, T]) -> dict[str | bytes, T]:
    """`by_name` keyed by each name as `str` and as latin-1 `bytes` (ASGI servers give bytes)."""
    both: dict[str | bytes, T] = {}
    for name, value in by_name.items():
        both[name] = both[name.encode("latin-1")] = value
    return both


class HeaderCapture:
    """Which headers to copy into attributes, decided once per set of instruments.

    Maps each lowercased name to its attribute key, or to None when its value
    must be redacted.
    """

    __slots__ = ("cgi_keys", "keys", "names", "redacted")

    def __init__(self, prefix: str, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self.keys = str_and_bytes({name: prefix + name for name in self.names})
        self.cgi_keys = tuple((cgi_key(name), name) for name in self.names)  # for WSGI
        self.redacted = frozenset(prefix + name for name in self.names if is_sensitive(name))

    def collect(
        self, headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]
    ) -> dict[str, tuple[str, ...]]:
        """Attributes for the captured headers among `(lowercase name, value)` pairs."""
        keys = self.keys
        found: dict[str, tuple[str, ...]] = {}
        for name, raw in headers:
            key = keys.get(name)
            if key is None:
                continue
            if key in self.redacted:
                kept = REDACTED
            else:
                value = raw.decode("latin-1") if isinstance(raw, bytes) else raw
                kept = cap(value, MAX_HEADER_VALUE)
            found[key] = (*found[key], kept) if key in found else (kept,)
        return found
