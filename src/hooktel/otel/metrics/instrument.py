"""HTTP server metrics from hooktel's hooks: the second instrument `HttpInstrumentation` attaches.

A hooktel instrument of its own, so metrics need no tracing: start keeps what
the metrics' attributes need from the start attributes (method, scheme,
protocol version), end and error record. It is attached before the span
instrument, so its end hook runs while the request's server span is still
current: exemplars point at that span, as they would with contrib's
middleware recording inside its span.

The duration histogram is recorded on every request; the other instruments
of the HTTP semantic conventions are opt-in (`opt_in_metrics=` or
`OTEL_PYTHON_HOOKTEL_OPT_IN_METRICS`), as the conventions mark them.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, cast

from opentelemetry import metrics

from ..._registry.instrument import Attributes, Instrument, InstrumentKind
from .._sdk import metrics as seam
from ..spans import fastpath
from .histograms import AggregatedHistogram, SdkHistogram
from .streamtable import Key

DURATION = "http.server.request.duration"
ACTIVE_REQUESTS = "http.server.active_requests"
REQUEST_BODY_SIZE = "http.server.request.body.size"
RESPONSE_BODY_SIZE = "http.server.response.body.size"
OPT_IN = (ACTIVE_REQUESTS, REQUEST_BODY_SIZE, RESPONSE_BODY_SIZE)
ENV_OPT_IN = "OTEL_PYTHON_HOOKTEL_OPT_IN_METRICS"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""The stable HTTP semantic conventions' advice for `http.server.request.duration`."""

NAMES = (
    "http.request.method",
    "url.scheme",
    "network.protocol.version",
    "http.response.status_code",
    "http.route",
    "error.type",
)
"""The attributes of the histograms, in the order of a `Key`; nothing of high cardinality."""

_STARTED = itemgetter("http.request.method", "url.scheme", "network.protocol.version")
Recorder = AggregatedHistogram | SdkHistogram
_Hook = Callable[[int, Attributes], None]
Opened = tuple[Any, ...]
"""What start keeps: method, scheme, protocol version, the start of the `Key`."""


def opt_in_from(kwargs: dict[str, Any]) -> frozenset[str]:
    """The opt-in instruments asked for: the option, else the environment variable."""
    given = kwargs.get("opt_in_metrics")
    if given is None:
        names = [n.strip() for n in os.environ.get(ENV_OPT_IN, "").split(",") if n.strip()]
        unknown = [name for name in names if name not in OPT_IN]
        if unknown:
            # A typo in the environment should not stop the service: it is reported.
            import logging

            logging.getLogger(__name__).warning(
                "%s: unknown metric name(s) %s ignored; known: %s", ENV_OPT_IN, unknown, OPT_IN
            )
        return frozenset(name for name in names if name in OPT_IN)
    if isinstance(given, str) or not isinstance(given, Iterable):
        raise TypeError("opt_in_metrics must be a list of metric names")
    unknown = [name for name in given if name not in OPT_IN]
    if unknown:
        raise ValueError(f"opt_in_metrics: unknown metric name(s) {unknown}; known: {OPT_IN}")
    return frozenset(given)


class ServerMetrics:
    """The hooks of the metrics instrument, bound to one meter."""

    def __init__(
        self,
        meter: metrics.Meter,
        provider: metrics.MeterProvider,
        excluded_urls: re.Pattern[str] | None,
        opt_in: frozenset[str],
    ) -> None:
        self._excluded = excluded_urls
        self._open: dict[int, Opened] = {}
        self._duration = _histogram(
            meter,
            provider,
            DURATION,
            "s",
            "Duration of HTTP server requests.",
            buckets=DURATION_BUCKETS,
        )
        self._active = (
            meter.create_up_down_counter(
                ACTIVE_REQUESTS, "{request}", "Number of active HTTP server requests."
            )
            if ACTIVE_REQUESTS in opt_in
            else None
        )
        self._request_size = (
            _histogram(
                meter, provider, REQUEST_BODY_SIZE, "By", "Size of HTTP server request bodies."
            )
            if REQUEST_BODY_SIZE in opt_in
            else None
        )
        self._response_size = (
            _histogram(
                meter, provider, RESPONSE_BODY_SIZE, "By", "Size of HTTP server response bodies."
            )
            if RESPONSE_BODY_SIZE in opt_in
            else None
        )
        self._extras = bool(opt_in)
        self._request_sizes: dict[int, int] = {}

    @classmethod
    def create(
        cls,
        kwargs: dict[str, Any],
        excluded_urls: re.Pattern[str] | None,
        scope: tuple[str, str, str],
    ) -> ServerMetrics | None:
        """From `instrument()`'s kwargs; None without a configured meter provider.

        `meter_provider`, else the global one; no provider set (the API's
        default stand-in) or a no-op one means no metrics and nothing attached.
        """
        opt_in = opt_in_from(kwargs)
        provider = kwargs.get("meter_provider") or metrics.get_meter_provider()
        if not seam.is_configured(provider):
            return None
        name, version, schema_url = scope
        meter = provider.get_meter(name, version, schema_url=schema_url)
        if isinstance(meter, metrics.NoOpMeter):  # a disabled or shut-down SDK
            return None
        return cls(meter, provider, excluded_urls, opt_in)

    def instrument(self, name: str, version: str) -> Instrument:
        """The hooktel instrument: the lean hooks unless exclusions or opt-ins need more."""
        full = self._excluded is not None or self._extras
        # The lean end hooks return the key they recorded under (for the full ones); a
        # hook's return value is ignored, hence the casts.
        return Instrument(
            kind=InstrumentKind.HTTP,
            name=name,
            version=version,
            on_operation_start=self.on_start_full if full else self.on_start,
            on_operation_end=self.on_end_full if full else cast(_Hook, self.on_end),
            on_operation_error=self.on_error_full if full else cast(_Hook, self.on_error),
        )

    # -- the hooks: the duration alone, the per-request path of the default setup -------

    def on_start(self, op_id: int, attrs: Attributes) -> None:
        try:
            self._open[op_id] = _STARTED(attrs)  # one C call for the three
        except KeyError:  # a hook point that did not know the protocol version
            self._open[op_id] = (
                attrs.get("http.request.method"),
                attrs.get("url.scheme"),
                attrs.get("network.protocol.version"),
            )

    def on_end(self, op_id: int, attrs: Attributes) -> Key | None:
        opened = self._open.pop(op_id, None)
        if opened is None:
            return None
        get = attrs.get
        status = get("http.response.status_code")
        key: Key = (  # built by index: cheaper than `opened + (...)` or `(*opened, ...)`
            opened[0],
            opened[1],
            opened[2],
            status,
            get("http.route") or None,
            # A 5xx is an error of the server, with the status as its type (as on the span).
            None if status is None or status < 500 else str(status),
        )
        self._duration.record(attrs["operation.duration"] / 1e9, key)
        return key

    def on_error(self, op_id: int, attrs: Attributes) -> Key | None:
        opened = self._open.pop(op_id, None)
        if opened is None:
            return None
        get = attrs.get
        route, status = get("http.route") or None, get("http.response.status_code")
        key: Key = (opened[0], opened[1], opened[2], status, route, get("error.type", "_OTHER"))
        self._duration.record(attrs["operation.duration"] / 1e9, key)
        return key

    # -- the hooks with excluded URLs or opt-in instruments ---------------------------------

    def on_start_full(self, op_id: int, attrs: Attributes) -> None:
        excluded = self._excluded
        if excluded is not None and excluded.search(attrs.get("url.full", "")):
            return
        self.on_start(op_id, attrs)
        if self._extras:
            self._start_extras(op_id, self._open[op_id], attrs)

    def on_end_full(self, op_id: int, attrs: Attributes) -> None:
        key = self.on_end(op_id, attrs)
        if key is not None and self._extras:
            self._end_extras(op_id, key, attrs)

    def on_error_full(self, op_id: int, attrs: Attributes) -> None:
        key = self.on_error(op_id, attrs)
        if key is not None and self._extras:
            self._end_extras(op_id, key, attrs)

    def _start_extras(self, op_id: int, opened: Opened, attrs: Attributes) -> None:
        if self._active is not None:
            self._active.add(1, _active_attributes(opened))
        size = attrs.get("http.request.body.size")
        if self._request_size is not None and size is not None:
            self._request_sizes[op_id] = size

    def _end_extras(self, op_id: int, key: Key, attrs: Attributes) -> None:
        if self._active is not None:
            self._active.add(-1, _active_attributes(key))
        size = self._request_sizes.pop(op_id, None)
        if self._request_size is not None and size is not None:
            self._request_size.record(size, key)
        response_size = attrs.get("http.response.body.size")
        if self._response_size is not None and response_size is not None:
            self._response_size.record(response_size, key)


def _takes_bucket_advice(meter: metrics.Meter) -> bool:
    """SDKs before 1.2x take no bucket advice: their histograms get the default buckets
    (docs/metrics.md says how a view sets the conventions' ones)."""
    parameters = inspect.signature(meter.create_histogram).parameters
    return "explicit_bucket_boundaries_advisory" in parameters


def _active_attributes(opened: tuple[Any, ...]) -> dict[str, Any]:
    method, scheme = opened[0], opened[1]
    attributes = {} if method is None else {"http.request.method": method}
    if scheme is not None:
        attributes["url.scheme"] = scheme
    return attributes


def _histogram(
    meter: metrics.Meter,
    provider: metrics.MeterProvider,
    name: str,
    unit: str,
    description: str,
    *,
    buckets: tuple[float, ...] | None = None,
) -> Recorder:
    instrument = (
        meter.create_histogram(name, unit, description, explicit_bucket_boundaries_advisory=buckets)
        if buckets is not None and _takes_bucket_advice(meter)
        else meter.create_histogram(name, unit, description)
    )
    # HOOKTEL_OTEL_FAST_PATH=0 records through the SDK here too (the tests compare both).
    aggregated = (
        AggregatedHistogram.for_instrument(instrument, NAMES, provider)
        if fastpath.enabled()
        else None
    )
    return aggregated if aggregated is not None else SdkHistogram(instrument, NAMES)
