"""The core's `untracked`: a container taken out of the garbage collector's care, returned
as it is (what it is for: tests/otel/test_untracked_spans.py)."""

from __future__ import annotations

import gc
from typing import Any

from hooktel import _core
from hooktel.otel.spans.requestspan_py import untracked_py


def test_untracked_takes_a_container_out_and_returns_it_as_it_is() -> None:
    assert _core.core is not None
    untracked = _core.core.untracked
    box: list[Any] = [1]
    assert gc.is_tracked(box)
    assert untracked(box) is box
    assert not gc.is_tracked(box)
    assert untracked(box) is box  # twice: no change
    for value in (7, "text", None, (1, 2)):
        assert untracked(value) is value
    assert untracked_py(box) is box
