# The compiled twin of the helpers in hooktel.otel.spans.requestspan_py (requestspan.c).

from typing import Any, TypeVar

_T = TypeVar("_T")

def format_traceparent(trace_id: int, span_id: int, trace_flags: int, /) -> str: ...
def without_keys(mapping: dict[str, Any], skip: frozenset[str], /) -> dict[str, Any]: ...
def untracked(obj: _T, /) -> _T: ...
def configure(*, known_trace_flags: int) -> None: ...

# The compiled request span (twin: requestspan_py.RequestSpan; see requestspan.c).

SPAN_FIELDS: tuple[str, ...]

class SpanCore:
    def start(self, start_time: int, parent_context: Any, /) -> None: ...
    def get_span_context(self) -> Any: ...
    def is_recording(self) -> bool: ...
    def set_trusted(self, attributes: dict[str, Any], /) -> None: ...
    def update_name(self, name: str, /) -> None: ...
    def end(self, end_time: int | None = None) -> None: ...
    @property
    def _lock(self) -> Any: ...

class Spans:
    def __init__(
        self,
        *,
        cls: type[SpanCore],
        processor: Any,
        on_ending: Any,
        readable: type,
        takes: Any,
        freeze: Any,
        warn: Any,
        lock_type: Any,
        set_trusted: Any,
        bounded: Any,
        unset: Any,
        kind: Any,
        resource: Any,
        info: Any,
        scope: Any,
        plain_max: int,
    ) -> None: ...
    def __call__(
        self, name: str, context: Any, parent: Any, attributes: dict[str, Any], record_end: Any, /
    ) -> SpanCore: ...

def span_type(name: str, fields: tuple[str, ...], /) -> type[SpanCore]: ...
