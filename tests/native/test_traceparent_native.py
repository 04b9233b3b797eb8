"""The compiled `format_traceparent` against its Python twin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooktel import _core
from hooktel._http.traceparent import format_traceparent_py

core = _core.core


@given(
    trace_id=st.integers(0, 2**128 - 1),
    span_id=st.integers(0, 2**64 - 1),
    flags=st.integers(0, 255),
)
def test_same_value_as_the_python_twin(trace_id: int, span_id: int, flags: int) -> None:
    assert core is not None
    assert core.format_traceparent(trace_id, span_id, flags) == format_traceparent_py(
        trace_id, span_id, flags
    )


@pytest.mark.parametrize("args", [(-1, 1, 1), (2**128, 1, 1), (1, 2**64, 1), (1, -5, 1)], ids=str)
def test_ids_out_of_range_raise_overflow_as_the_twin(args: tuple[int, int, int]) -> None:
    assert core is not None
    with pytest.raises(OverflowError):
        format_traceparent_py(*args)
    with pytest.raises(OverflowError):
        core.format_traceparent(*args)
