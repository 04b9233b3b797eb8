"""The compiled `format_traceparent` against its Python twin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooktel.otel.spans import requestspan_py
from hooktel.otel.spans.requestspan_py import KNOWN_TRACE_FLAGS, format_traceparent

native = requestspan_py.helpers


@given(
    trace_id=st.integers(0, 2**128 - 1),
    span_id=st.integers(0, 2**64 - 1),
    flags=st.integers(0, 255),
)
def test_same_value_as_the_python_twin(trace_id: int, span_id: int, flags: int) -> None:
    assert native is not requestspan_py
    assert native.format_traceparent(trace_id, span_id, flags) == format_traceparent(
        trace_id, span_id, flags
    )


def test_flags_the_spec_does_not_define_are_sent_as_zero() -> None:
    """W3C Trace Context Level 2, 3.2.2.5: other bits "MUST" be zero in version 00."""
    for formatter in (native.format_traceparent, format_traceparent):
        value = formatter(1, 2, 0xFF)
        assert value == f"00-{1:032x}-{2:016x}-{KNOWN_TRACE_FLAGS:02x}"
        assert int(value[-2:], 16) & ~KNOWN_TRACE_FLAGS == 0


@pytest.mark.parametrize("args", [(-1, 1, 1), (2**128, 1, 1), (1, 2**64, 1), (1, -5, 1)], ids=str)
def test_ids_out_of_range_raise_overflow_as_the_twin(args: tuple[int, int, int]) -> None:
    with pytest.raises(OverflowError):
        format_traceparent(*args)
    with pytest.raises(OverflowError):
        native.format_traceparent(*args)
