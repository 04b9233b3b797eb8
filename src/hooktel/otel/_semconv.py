"""The HTTP attribute names before semantic conventions 1.21, for `OTEL_SEMCONV_STABILITY_OPT_IN`.

hooktel reports the stable names (what contrib calls `http`). With
`OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` it reports the old names beside
them, as contrib's instrumentations do in that mode, so dashboards and alerts
built on `http.method` or `http.status_code` keep working through a migration.
The pairs are contrib's (`opentelemetry.instrumentation._semconv`, server side).
"""

from __future__ import annotations

from typing import Any

OLD_NAMES = {
    "http.request.method": "http.method",
    "url.scheme": "http.scheme",
    "server.address": "net.host.name",
    "server.port": "net.host.port",
    "client.address": "net.peer.ip",
    "client.port": "net.peer.port",
    "network.protocol.version": "http.flavor",
    "user_agent.original": "http.user_agent",
    "http.request.body.size": "http.request_content_length",
    "http.response.status_code": "http.status_code",
    "http.response.body.size": "http.response_content_length",
}
"""Stable name -> the name it replaced."""


def with_old_names(span_attrs: dict[str, Any], hook_attrs: dict[str, Any]) -> dict[str, Any]:
    """`span_attrs` plus the old name of each attribute that has one (in place)."""
    old = {OLD_NAMES[key]: value for key, value in span_attrs.items() if key in OLD_NAMES}
    if "url.path" in hook_attrs:  # http.target: the path and the query, as sent
        query = hook_attrs.get("url.query")
        old["http.target"] = (
            f"{hook_attrs['url.path']}?{query}" if query else hook_attrs["url.path"]
        )
    if "url.full" in hook_attrs:
        old["http.url"] = hook_attrs["url.full"]
    span_attrs.update(old)
    return span_attrs
