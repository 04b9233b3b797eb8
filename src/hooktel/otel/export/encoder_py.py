"""OTLP/protobuf bytes of finished spans, written directly: the specification of `encoder.c`.

`encode_spans(spans)` returns the bytes of one `ExportTraceServiceRequest`
(opentelemetry-proto: `collector/trace/v1/trace_service.proto`,
`trace/v1/trace.proto`, `common/v1/common.proto`), with no protobuf message
objects in between. The message is the one the stock exporter sends for the
same spans (`opentelemetry.exporter.otlp.proto.common.trace_encoder`), field
for field and in the same order, and the bytes are canonical: fields in
number order, shortest varints, a field at its default value left out
(except inside `AnyValue`'s oneof, where a set value is always written).

- Spans are grouped by resource, then by instrumentation scope (a falsy scope
  counts as none), each group where its first span appears; two equal
  resources (or scopes) are one group, as in the stock exporter's dicts.
- Each span is read through `ReadableSpan`'s public properties, which every
  SDK span handed to `on_end` has (the SDK's own `ReadableSpan`, and hooktel's
  `RequestSpan`). The C twin reads the fields behind those properties
  (`_sdk.READABLE_FIELDS`, and a `BoundedAttributes`' plain dict `_dict`)
  directly, for speed: the same values, in the same order.
- An attribute whose value OTLP cannot carry (a type it has no value for, an
  int outside int64, a str that is not valid Unicode, arrays or maps nested
  over `MAX_DEPTH` deep) is left out, as the stock encoder leaves it out (it logs it);
  `encode_spans` returns how many were left out, so the caller can count them.
- A span that cannot be encoded at all (ids that are not ints in range, a
  kind that is not a `SpanKind`, a name that is not text, a time outside
  uint64) raises `TypeError`, `ValueError`, `OverflowError` or `KeyError`
  (all subclasses of `Exception`), and nothing is returned for the batch:
  the caller encodes such a batch again span by span to find the bad ones.

The C twin (`hooktel.otel.export.encoder`) returns the same bytes; the differential
test in tests/native/test_encoder_native.py holds both to the stock encoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind

# Wire types.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
# SpanFlags: the span's (or link's) context says whether its parent is remote.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
# opentelemetry.proto.trace.v1.Span.SpanKind: the SDK's SpanKind value + 1.
_KINDS = {kind: kind.value + 1 for kind in SpanKind}
_INT64 = (-(2**63), 2**63 - 1)
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
MAX_DEPTH = 30
"""Arrays and maps nested deeper than this are left out. Each level nests two or three
messages, and protobuf's own decoder (upb) refuses a message nested over 100 deep: past
this depth a receiver could not read the batch at all. (The stock encoder goes on until
Python's recursion limit.)"""


class _Unencodable(Exception):
    """An attribute value OTLP cannot carry: the attribute is left out."""


class _Message:
    """One protobuf message being written: fields appended in field-number order."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def tag(self, number: int, wire_type: int) -> None:
        self.varint((number << 3) | wire_type)

    def varint(self, value: int) -> None:
        value &= 0xFFFFFFFFFFFFFFFF  # negative int64: two's complement, ten bytes
        while value > 0x7F:
            self.data.append((value & 0x7F) | 0x80)
            value >>= 7
        self.data.append(value)

    def uint(self, number: int, value: int | None, limit: int = _UINT64_MAX) -> None:
        """A uint32/uint64/enum field; left out when 0 (or None)."""
        if value is not None and not isinstance(value, int):
            raise TypeError(f"field {number}: expected int, got {type(value).__name__}")
        if value:
            if not 0 <= value <= limit:
                raise OverflowError(f"field {number}: {value} out of range")
            self.tag(number, _VARINT)
            self.varint(value)

    def fixed64(self, number: int, value: int | None) -> None:
        if value:
            self.tag(number, _FIXED64)
            self.data += _to_fixed64(value)

    def fixed32(self, number: int, value: int) -> None:
        if value:
            self.tag(number, _FIXED32)
            self.data += struct.pack("<I", value)

    def bytes_(self, number: int, value: bytes | None, always: bool = False) -> None:
        if value or (always and value is not None):
            self.tag(number, _LEN)
            self.varint(len(value))
            self.data += value

    def text(self, number: int, value: str | None, always: bool = False) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"field {number}: expected str, got {type(value).__name__}")
        self.bytes_(number, None if value is None else value.encode(), always)

    def message(self, number: int, body: _Message) -> None:
        """A submessage field: written even when empty (it is set)."""
        self.bytes_(number, bytes(body.data), always=True)


def _to_fixed64(value: int) -> bytes:
    if not isinstance(value, int):
        raise TypeError(f"time: expected int, got {type(value).__name__}")
    if not 0 <= value <= _UINT64_MAX:
        raise OverflowError(f"time {value} out of range for fixed64")
    return struct.pack("<Q", value)


# -- attributes ---------------------------------------------------------------------------


def _any_value(value: Any, depth: int) -> _Message:
    """`AnyValue`; raises `_Unencodable` for what OTLP cannot carry."""
    out = _Message()
    if value is None:
        return out
    if isinstance(value, bool):
        out.tag(2, _VARINT)
        out.varint(int(value))
    elif isinstance(value, str):
        try:
            out.text(1, value, always=True)
        except UnicodeEncodeError as exc:
            raise _Unencodable("a str that is not valid Unicode") from exc
    elif isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Unencodable(f"int {value} outside int64")
        out.tag(3, _VARINT)
        out.varint(int(value))
    elif isinstance(value, float):
        out.tag(4, _FIXED64)
        out.data += struct.pack("<d", value)
    elif isinstance(value, bytes):
        out.bytes_(7, bytes(value), always=True)
    else:
        _container_value(out, value, depth)
    return out


def _container_value(out: _Message, value: Any, depth: int) -> None:
    """An array (any Sequence) or a key-value list (any Mapping, keys made str)."""
    is_sequence = isinstance(value, Sequence)
    if not is_sequence and not isinstance(value, Mapping):
        raise _Unencodable(f"no OTLP value for {type(value).__name__}")
    if depth >= MAX_DEPTH:
        raise _Unencodable("a value nested this deep")
    body = _Message()
    if is_sequence:
        for item in value:
            body.message(1, _any_value(item, depth + 1))
    else:
        for key, item in value.items():
            body.message(1, _key_value(str(key), item, depth + 1))
    out.message(5 if is_sequence else 6, body)


def _key_value(key: Any, value: Any, depth: int) -> _Message:
    if not isinstance(key, str):
        raise _Unencodable(f"key {key!r} is not a str")
    out = _Message()
    try:
        out.text(1, key)
    except UnicodeEncodeError as exc:
        raise _Unencodable("a key that is not valid Unicode") from exc
    out.message(2, _any_value(value, depth))
    return out


def _attributes(out: _Message, number: int, attributes: Mapping[str, Any] | None) -> int:
    """Append each attribute as a `KeyValue` field; the number left out."""
    left_out = 0
    if not attributes:
        return 0
    for key, value in attributes.items():
        try:
            entry = _key_value(key, value, 0)
        except Exception:  # as the stock encoder: whatever fails, this attribute is left out
            left_out += 1
            continue
        out.message(number, entry)
    return left_out


# -- spans --------------------------------------------------------------------------------


def _flags(context: Any) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if context and context.is_remote else 0)


def _trace_state(trace_state: Any) -> str | None:
    if trace_state is None:
        return None
    return ",".join(f"{key}={value}" for key, value in trace_state.items())


def _event(event: Any) -> tuple[_Message, int]:
    out = _Message()
    out.fixed64(1, event.timestamp)
    out.text(2, event.name)
    left_out = _attributes(out, 3, event.attributes)
    out.uint(4, event.dropped_attributes, _UINT32_MAX)
    return out, left_out


def _link(link: Any) -> tuple[_Message, int]:
    out = _Message()
    context = link.context
    out.bytes_(1, context.trace_id.to_bytes(16, "big"))
    out.bytes_(2, context.span_id.to_bytes(8, "big"))
    left_out = _attributes(out, 4, link.attributes)  # the link's trace state is not sent
    out.uint(5, link.dropped_attributes, _UINT32_MAX)
    out.fixed32(6, _flags(context))
    return out, left_out


def _span(span: Any) -> tuple[_Message, int]:
    """One `Span` message and the number of attribute values left out."""
    context = span.context
    parent = span.parent
    out = _Message()
    out.bytes_(1, context.trace_id.to_bytes(16, "big"))
    out.bytes_(2, context.span_id.to_bytes(8, "big"))
    out.text(3, _trace_state(context.trace_state))
    if parent:
        out.bytes_(4, parent.span_id.to_bytes(8, "big"))
    out.text(5, span.name)
    out.uint(6, _KINDS[span.kind])
    out.fixed64(7, span.start_time)
    out.fixed64(8, span.end_time)
    left_out = _attributes(out, 9, span.attributes)
    out.uint(10, span.dropped_attributes, _UINT32_MAX)
    for event in span.events:
        body, n = _event(event)
        out.message(11, body)
        left_out += n
    out.uint(12, span.dropped_events, _UINT32_MAX)
    for link in span.links:
        body, n = _link(link)
        out.message(13, body)
        left_out += n
    out.uint(14, span.dropped_links, _UINT32_MAX)
    status = span.status
    if status is not None:
        body = _Message()
        body.text(2, status.description)
        body.uint(3, status.status_code.value)
        out.message(15, body)
    out.fixed32(16, _flags(parent))
    return out, left_out


# -- grouping -----------------------------------------------------------------------------


class _Group:
    """Spans that share a key (a resource, or a scope), in the order they came."""

    __slots__ = ("items", "key")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.items: list[Any] = []


def _group(groups: list[_Group], key: Any) -> _Group:
    """The group of `key`: the last one used, else an equal one, else a new one."""
    if groups and groups[-1].key is key:
        return groups[-1]
    for group in groups:
        if group.key is key or group.key == key:
            return group
    groups.append(_Group(key))
    return groups[-1]


def encode_spans(spans: Iterable[Any]) -> tuple[bytes, int]:
    """The `ExportTraceServiceRequest` bytes for `spans`, and the attributes left out."""
    resources: list[_Group] = []
    left_out = 0
    for span in spans:
        body, n = _span(span)
        left_out += n
        scopes = _group(resources, span.resource).items
        _group(scopes, span.instrumentation_scope or None).items.append(body)
    request = _Message()
    for resource_group in resources:
        resource = resource_group.key
        resource_spans = _Message()
        resource_body = _Message()
        left_out += _attributes(resource_body, 1, resource.attributes)
        resource_spans.message(1, resource_body)
        for scope_group in resource_group.items:
            scope = scope_group.key
            scope_spans = _Message()
            scope_body = _Message()
            if scope is not None:
                scope_body.text(1, scope.name)
                scope_body.text(2, scope.version)
                left_out += _attributes(scope_body, 3, scope.attributes)
            scope_spans.message(1, scope_body)
            for span_body in scope_group.items:
                scope_spans.message(2, span_body)
            scope_spans.text(3, scope.schema_url if scope is not None else None)
            resource_spans.message(2, scope_spans)
        resource_spans.text(3, resource.schema_url)
        request.message(1, resource_spans)
    return bytes(request.data), left_out
