"""What `OTLPSpanProcessor` is told: its arguments, else the environment the stock classes read.

The names and defaults are those of `OTLPSpanExporter` (OTLP/HTTP) and
`BatchSpanProcessor`, so a user swaps `BatchSpanProcessor(OTLPSpanExporter())`
for `OTLPSpanProcessor()` and keeps their configuration:

- endpoint: `endpoint`, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
  it is), else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else
  `http://localhost:4318/v1/traces`;
- `headers`, `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `_HEADERS` (`k=v,k2=v2`,
  URL-encoded); `timeout` (seconds per request), `_TIMEOUT` (seconds, 10);
  `compression` (`gzip`, `deflate` or `none`), `_COMPRESSION`;
  `certificate_file`, `client_key_file`, `client_certificate_file` (https),
  `_CERTIFICATE`, `_CLIENT_KEY`, `_CLIENT_CERTIFICATE`;
- `max_queue_size` (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048), `schedule_delay_millis`
  (`OTEL_BSP_SCHEDULE_DELAY`, 5000), `max_export_batch_size`
  (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512), `export_timeout_millis`
  (`OTEL_BSP_EXPORT_TIMEOUT`, 30000: how long one batch may take, retries
  included).

A value that cannot be used (not a number, not positive, an unknown
compression) is logged and replaced by the default, as the SDK does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from opentelemetry.util.re import parse_env_headers

from ... import __version__

logger = logging.getLogger(__name__)

Compression = Literal["none", "gzip", "deflate"]
DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
USER_AGENT = f"hooktel/{__version__} OTLP-HTTP"

_PREFIXES = ("OTEL_EXPORTER_OTLP_TRACES_", "OTEL_EXPORTER_OTLP_")
_BSP_DEFAULTS = {
    "OTEL_BSP_MAX_QUEUE_SIZE": 2048,
    "OTEL_BSP_SCHEDULE_DELAY": 5000,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512,
    "OTEL_BSP_EXPORT_TIMEOUT": 30000,
}
_COMPRESSIONS = ("none", "gzip", "deflate")
SHUTDOWN_TIMEOUT = 10.0
"""The most `OTLPSpanProcessor.shutdown()` takes by default (seconds): a third of the
30 s grace period Kubernetes and most supervisors give, leaving the rest to the server."""


def _otlp_env(name: str) -> str | None:
    """`OTEL_EXPORTER_OTLP_TRACES_<name>`, else `OTEL_EXPORTER_OTLP_<name>`; None if unset."""
    for prefix in _PREFIXES:
        value = os.environ.get(prefix + name, "").strip()
        if value:
            return value
    return None


def _positive(value: float | str | None, env: str, default: float) -> float:
    """A positive number from an argument, else the environment, else the default."""
    source = value if value is not None else os.environ.get(env, "").strip() or None
    if source is None:
        return default
    try:
        number = float(source)
    except (TypeError, ValueError):
        number = 0.0
    if number > 0:
        return number
    logger.warning("hooktel: %s=%r is not a positive number; using %s", env, source, default)
    return default


def _endpoint(endpoint: str | None) -> str:
    if endpoint:
        return endpoint
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    return base.rstrip("/") + TRACES_PATH


def _compression(compression: str | None) -> Compression:
    value = (compression or _otlp_env("COMPRESSION") or "none").strip().lower()
    for known in _COMPRESSIONS:
        if value == known:
            return known  # type: ignore[return-value]
    logger.warning("hooktel: unsupported OTLP compression %r; sending uncompressed", value)
    return "none"


@dataclass(frozen=True)
class ExportConfig:
    """The resolved settings of one `OTLPSpanProcessor`."""

    endpoint: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    compression: Compression = "none"
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    max_queue_size: int = 2048
    schedule_delay: float = 5.0
    max_export_batch_size: int = 512
    export_timeout: float = 30.0

    @classmethod
    def resolve(  # noqa: PLR0917 - the stock classes' arguments, all optional
        cls,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> ExportConfig:
        """Arguments first, then the environment, then the stock defaults."""
        resolved_headers = {
            key.lower(): value
            for key, value in parse_env_headers(_otlp_env("HEADERS") or "", liberal=True).items()
        }
        resolved_headers.update({key.lower(): value for key, value in (headers or {}).items()})
        queue = int(
            _positive(
                max_queue_size, "OTEL_BSP_MAX_QUEUE_SIZE", _BSP_DEFAULTS["OTEL_BSP_MAX_QUEUE_SIZE"]
            )
        )
        batch = int(
            _positive(
                max_export_batch_size,
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                _BSP_DEFAULTS["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
            )
        )
        if batch > queue:
            logger.warning(
                "hooktel: max_export_batch_size %d is over max_queue_size %d; using %d",
                batch,
                queue,
                queue,
            )
            batch = queue
        config = cls(
            endpoint=_endpoint(endpoint),
            headers=resolved_headers,
            timeout=_positive(timeout, _PREFIXES[0] + "TIMEOUT", _timeout_default()),
            compression=_compression(compression),
            certificate_file=certificate_file or _otlp_env("CERTIFICATE"),
            client_key_file=client_key_file or _otlp_env("CLIENT_KEY"),
            client_certificate_file=client_certificate_file or _otlp_env("CLIENT_CERTIFICATE"),
            max_queue_size=queue,
            schedule_delay=_positive(
                schedule_delay_millis,
                "OTEL_BSP_SCHEDULE_DELAY",
                _BSP_DEFAULTS["OTEL_BSP_SCHEDULE_DELAY"],
            )
            / 1000,
            max_export_batch_size=batch,
            export_timeout=_positive(
                export_timeout_millis,
                "OTEL_BSP_EXPORT_TIMEOUT",
                _BSP_DEFAULTS["OTEL_BSP_EXPORT_TIMEOUT"],
            )
            / 1000,
        )
        scheme = urlsplit(config.endpoint).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"OTLP endpoint {config.endpoint!r}: not an http(s) URL")
        return config


def _timeout_default() -> float:
    """`OTEL_EXPORTER_OTLP_TIMEOUT` when the traces variable is not set, else 10 s."""
    return _positive(None, "OTEL_EXPORTER_OTLP_TIMEOUT", 10.0)
