"""The compiled `without_keys` (the span attributes' filter) against its Python twin."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hooktel.otel.spans import requestspan_py
from hooktel.otel.spans.requestspan_py import without_keys

keys = st.sampled_from(["operation.id", "url.full", "http.route", "a", "b", "é"])
values = st.one_of(st.integers(), st.text(max_size=3), st.tuples(st.text(max_size=2)))


@given(mapping=st.dictionaries(keys, values), skip=st.frozensets(keys) | st.sets(keys))
def test_same_items_in_the_same_order(mapping: dict[str, Any], skip: frozenset[str]) -> None:
    assert requestspan_py.helpers is not requestspan_py
    native = requestspan_py.helpers.without_keys(mapping, skip)
    python = without_keys(mapping, skip)
    assert list(native.items()) == list(python.items())
    assert native is not mapping
