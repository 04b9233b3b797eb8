"""hooktel's SERVER span, lent to a framework that would otherwise start its own.

FastAPI's telemetry starts a SERVER span per request, annotates it and ends it
when its part is done. For a request hooktel traces, `hooktel.frameworks` hands
it this view of hooktel's span instead: the framework (and the handler, to
which it is the current span) can read it and annotate it while it records,
but only hooktel ends it, when the response is complete.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import SpanContext, Status, StatusCode
from opentelemetry.util.types import AttributeValue


class BorrowedSpan(trace.Span):
    """Forwards to hooktel's span; `end()` does nothing, late annotations are dropped."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def get_span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._span.is_recording():  # FastAPI annotates after the response: hooktel ended it
            self._span.set_attributes(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._span.is_recording():
            self._span.set_attribute(key, value)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._span.is_recording():
            self._span.set_status(status, description)

    def update_name(self, name: str) -> None:
        if self._span.is_recording():
            self._span.update_name(name)

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
    ) -> None:
        self._span.add_event(name, attributes, timestamp)

    def add_link(
        self, context: SpanContext, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        self._span.add_link(context, attributes)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._span.record_exception(exception, attributes, timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        """hooktel ends its span when the response is complete."""

    def __repr__(self) -> str:
        return f"BorrowedSpan({self._span!r})"
