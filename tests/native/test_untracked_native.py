"""The compiled `untracked`: a container taken out of the garbage collector's care, returned
as it is (what it is for: tests/otel/test_untracked_spans.py)."""

from __future__ import annotations

import gc
from typing import Any

from hooktel.otel.spans import requestspan_py


def test_untracked_takes_a_container_out_and_returns_it_as_it_is() -> None:
    untracked = requestspan_py.helpers.untracked
    assert untracked is not requestspan_py.untracked
    box: list[Any] = [1]
    assert gc.is_tracked(box)
    assert untracked(box) is box
    assert not gc.is_tracked(box)
    assert untracked(box) is box  # twice: no change
    for value in (7, "text", None, (1, 2)):
        assert untracked(value) is value
    assert requestspan_py.untracked(box) is box
